"""The FastAPI service: job submission through Ray's Jobs API, distillation, the equation registry, a page."""
