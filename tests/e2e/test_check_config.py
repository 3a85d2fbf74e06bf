"""`pmc-adapter check-config`: the configuration and what it names, checked without
starting; secrets never printed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.databases import migrated
from support.servers import ErpSim

CLI = str(Path(sys.executable).with_name("pmc-adapter"))
SECRETS = ("pmc-Pw-31337", "erp-Pw-777", "ftp-Pw-42", "db-Pw-9", "pmc-api-token-0123456789")


def check(tmp_path, config: str = "", **env):
    path = tmp_path / "adapter.toml"
    path.write_text(config)
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("PMC_ADAPTER_")}
    return subprocess.run([CLI, "--config", str(path), "check-config"], capture_output=True,
                          text=True, timeout=120, env={**environment, **env})


def test_a_sound_configuration_passes_and_no_secret_is_printed(tmp_path, database_url):
    migrated(database_url)  # a sound configuration's database is at the schema's head
    erp = ErpSim(tmp_path, ["C1,F1,ARS,2030-01-01,1.00,,,,"]).start()
    try:
        result = check(tmp_path, f"""
[adapter]
database_url = "{database_url}"
erp_wsdl = "{erp.wsdl_url}"
erp_password = "{SECRETS[1]}"
cob_ftp_password = "{SECRETS[2]}"
[callers.pmc]
password = "{SECRETS[0]}"
[callers.pmc-api]
access_token = "{SECRETS[4]}"
""")
    finally:
        erp.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   database: " in result.stdout and "ok   ERP (global): WSDL" in result.stdout
    assert "0 problem(s)" in result.stdout
    assert not any(secret in result.stdout + result.stderr for secret in SECRETS)
    assert result.stdout.count('"********"') == 4


def test_every_problem_is_listed_and_the_exit_status_says_so(tmp_path):
    (tmp_path / "key.pem").write_text("not a key")
    (tmp_path / "cert.pem").write_text("not a certificate")
    result = check(tmp_path, f"""
[adapter]
database_url = "postgresql+psycopg://nobody:{SECRETS[3]}@127.0.0.1:1/nowhere"
erp_wsdl = "http://127.0.0.1:1/erp?wsdl"
tls_cert = "{tmp_path / 'cert.pem'}"
tls_key = "{tmp_path / 'key.pem'}"
tls_client_ca = "{tmp_path / 'missing-ca.pem'}"
""")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "FAIL tls_client_ca: " in out and "missing-ca.pem does not exist" in out
    assert "FAIL tls_cert + tls_key: not a usable certificate and key" in out
    assert "FAIL database: " in out
    assert "FAIL ERP (global): WSDL http://127.0.0.1:1/erp?wsdl not loadable" in out
    assert "4 problem(s)" in out
    assert SECRETS[3] not in out + result.stderr and "nobody:***@" in out


def test_a_wrong_setting_is_a_configuration_error(tmp_path):
    result = check(tmp_path, '[adapter]\nallowed_networks = ["10.0.0.300/8"]\nbogus = 1\n')
    assert result.returncode == 2
    assert "configuration error" in result.stderr
