"""FastAPI service that serves the trained artifact."""
