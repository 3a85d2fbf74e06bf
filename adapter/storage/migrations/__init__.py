"""Alembic migrations: ``pmc-adapter upgrade-schema`` (and ``serve``) apply them."""
