"""Alembic migrations of Conduit's PostgreSQL schema."""
