"""Outbound adapter: the database (SQLAlchemy; SQLite by default, PostgreSQL in production)."""
