"""PMC's JSON API proved by a tool nobody here wrote: schemathesis reads the served
OpenAPI document (``/api/v1/openapi.json``) and sends what it derives from it --
valid bodies and bodies that break each rule -- to a real server (SQLite and
PostgreSQL). No answer may be a server error, have a status or a body the document
does not declare, or accept what the document refuses.

``positive_data_acceptance`` is left out: a body of the right shape can still be
refused for what the shape cannot say (a 30 February, a float such as
0.29000000000000004 for an amount), with a 400 that names the field.

The seed is fixed, so that a failure is the same on every run; set
``PMC_ADAPTER_TEST_SCHEMATHESIS_SEED`` to explore others.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support.servers import start_server, stop_server

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
SEED = os.environ.get("PMC_ADAPTER_TEST_SCHEMATHESIS_SEED", "20261207")


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_contract(
        own_database, tmp_path):
    # serving any biller (no billers list), so that the bodies it makes up are stored
    server = start_server(own_database, tmp_path, PMC_ADAPTER_EMPRESAS="")
    try:
        run = subprocess.run(
            [SCHEMATHESIS, "run", f"{server.base_url}/api/v1/openapi.json",
             "--checks", "all", "--exclude-checks", "positive_data_acceptance",
             "--phases", "coverage,fuzzing", "--max-examples", "60", "--seed", SEED,
             "--request-timeout", "30", "--no-color"],
            capture_output=True, text=True, timeout=900, cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
        assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
        assert "No issues found" in run.stdout
        # its valid bodies reached the use cases, not only the refusals (it sends the
        # same operation_id again and again: stored once, answered 00 each time)
        stored = re.findall(r"api request=\w+ operation=payment_notify .*outcome=00 ",
                            server.log())
        assert len(stored) >= 10 and server.database.count("payments") >= 1, run.stdout[-3000:]
        assert server.database.count("debt_queries") >= 10
        assert server.alive()
        assert "Traceback" not in server.log()
    finally:
        stop_server(server)
