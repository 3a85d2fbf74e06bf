"""Helpers of the test suite, imported by name (``from support.servers import start_server``);
tests/conftest.py holds the fixtures and hooks only."""
