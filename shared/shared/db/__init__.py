"""PostgreSQL models and sessions."""
