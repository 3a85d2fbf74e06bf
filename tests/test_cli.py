"""`pmc-adapter serve` as a new user runs it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from conftest import start_server, stop_server

CLI = str(Path(sys.executable).with_name("pmc-adapter"))


def test_serve_defaults_to_a_sqlite_file_in_the_working_directory(tmp_path):
    server = start_server(f"sqlite:///{tmp_path / 'unused.sqlite3'}", tmp_path,
                          PMC_ADAPTER_DATABASE_URL="")
    try:
        assert (tmp_path / "pmc-adapter.sqlite3").exists()
        assert not (tmp_path / "unused.sqlite3").exists()
        health = requests.get(server.base_url + "/health", timeout=10)
        assert health.json() == {"status": "ok", "database": "ok"}
    finally:
        stop_server(server)


@pytest.mark.postgresql
def test_health_answers_503_when_the_database_does_not(postgres_server_url, tmp_path):
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    name = f"pmc_adapter_health_{os.getpid()}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    server = start_server(make_url(postgres_server_url).set(database=name)
                          .render_as_string(hide_password=False), tmp_path)
    try:
        assert requests.get(server.base_url + "/health", timeout=10).status_code == 200
        server.database.engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        health = requests.get(server.base_url + "/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
    finally:
        stop_server(server)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_configuration_errors_stop_serve_with_a_message(tmp_path):
    result = subprocess.run([CLI, "serve"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={**os.environ, "PMC_ADAPTER_EMPRESAS": "12"})
    assert result.returncode == 2
    assert "configuration error: biller numbers are 4 digits; got 12" in result.stderr
