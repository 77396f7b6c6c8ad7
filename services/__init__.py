"""The FastAPI service: submits Ray jobs through the Jobs API and serves distilled equations."""
