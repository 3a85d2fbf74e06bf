"""`pmc-adapter serve` as a new user runs it."""
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from support.data import unique
from support.servers import start_server, stop_server
from support.soap import RawSoap, envelope

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
    assert "configuration error: billers: biller numbers are 4 digits; got 12" in result.stderr


@pytest.mark.parametrize("command", ["serve", "check-config"])
def test_a_typo_in_any_section_stops_serve_and_check_config_naming_it(tmp_path, command):
    config = tmp_path / "adapter.toml"
    config.write_text('[callers.pmc]\npassword = "x"\nbiller = ["1234"]\n')
    result = subprocess.run([CLI, "--config", str(config), command], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert "configuration error: unknown setting 'biller' in [callers.pmc] (did you mean " \
           "billers?)" in result.stderr


def test_a_caller_bound_to_a_biller_acts_for_it_alone(database_url, schema, tmp_path):
    """`billers` in a caller's section (the English name; `empresas` its alias) binds
    it: over real HTTP, a notice and a status inquiry for another biller are refused."""
    config = tmp_path / "adapter.toml"
    config.write_text('[adapter]\ntrusted_proxies = ["127.0.0.0/8"]\n'
                      '[callers.pmc]\npassword = "s3cret"\nbillers = ["1234"]\n')
    server = start_server(database_url, tmp_path, PMC_ADAPTER_CONFIG=str(config))
    soap = RawSoap(server.soap_url, schema)
    headers = {"Authorization": "Basic " + base64.b64encode(b"pmc:s3cret").decode(),
               "X-Forwarded-Proto": "https"}
    try:
        before = server.database.counts()
        operation = unique("OP")
        paid = soap.post(envelope("InformarPago", [
            ("idEmpresa", "5678"), ("idOperacion", operation), ("idCliente", "C1"),
            ("idFactura", "F-1"), ("importe", "10.00"), ("moneda", "ARS"),
            ("fechaPago", "2026-12-01T10:00:00-03:00")]), soap_action="InformarPago",
            headers=headers)
        assert paid.fault_code == "soap:Client.NotAuthorized"
        status = soap.post(envelope("ConsultarPago", [("idEmpresa", "5678"),
                                                      ("idOperacion", operation)]),
                           soap_action="ConsultarPago", headers=headers)
        assert status.fault_code == "soap:Client.NotAuthorized"
        assert server.database.counts() == before
        own = soap.post(envelope("ConsultarDeuda", [("idEmpresa", "1234"), ("idCliente", "C1")]),
                        soap_action="ConsultarDeuda", headers=headers)
        assert not own.is_fault
    finally:
        stop_server(server)


# -- only serve, worker and upgrade-schema change the schema --------------------------------

READING_COMMANDS = [["forwards"], ["forwards", "--to", "pmc", "--status", "failing"],
                    ["charges", "--month", "2026-11"], ["observed"], ["reconcile"],
                    ["fac-status"], ["resolve", "R-1", "--dismiss", "--reason", "x",
                                     "--operator", "ana"]]


@pytest.mark.parametrize("command", READING_COMMANDS, ids=lambda command: " ".join(command))
def test_a_command_other_than_serve_worker_upgrade_never_creates_nor_migrates(tmp_path,
                                                                                command):
    database = tmp_path / "never.sqlite3"
    environment = {**os.environ, "PMC_ADAPTER_DATABASE_URL": f"sqlite:///{database}",
                   "PMC_ADAPTER_BILLERS": "1234"}
    result = subprocess.run([CLI, *command], capture_output=True, text=True, timeout=120,
                            env=environment, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "`pmc-adapter upgrade-schema` creates or migrates it" in result.stderr
    assert not database.exists()
    upgraded = subprocess.run([CLI, "upgrade-schema"], capture_output=True, text=True,
                              timeout=120, env=environment, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    again = subprocess.run([CLI, *command], capture_output=True, text=True, timeout=120,
                           env=environment, cwd=tmp_path)
    assert "upgrade-schema" not in again.stderr, again.stderr
