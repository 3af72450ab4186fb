"""Persistence: typed SQLAlchemy models, engine and session setup, the report job queue."""
