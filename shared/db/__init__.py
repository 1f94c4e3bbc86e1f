"""Database models and session factory."""
