"""Symbolic Learning to Optimize: learned optimizers, their distillation into equations, and evaluation.

This package is the science in pure PyTorch. It imports neither Ray nor FastAPI; the orchestration
layer (``cluster/``, ``jobs/``) and the web service (``services/``) build on it.
"""

__version__ = "0.1.0"
