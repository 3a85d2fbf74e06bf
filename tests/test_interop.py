"""Other stacks import the live WSDL and run the end-to-end flow: Java (wsimport, JAX-WS RI)
and Node (node-soap). Each skips, with the reason, where its tools are missing; CI
installs them (.ci/run)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import unique

INTEROP = Path(__file__).parent / "interop"
REQUIRE = os.environ.get("PMC_ADAPTER_TEST_REQUIRE_INTEROP") == "1"  # CI: never skip
JAXWS_RUNTIME = Path("/usr/share/java/jaxws-rt.jar")  # Debian's jaxws/libjaxws-java


def skip(reason: str):
    if REQUIRE:
        pytest.fail(reason + " (PMC_ADAPTER_TEST_REQUIRE_INTEROP=1)")
    pytest.skip(reason)


def run(command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} failed:\n"
                                    f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def test_java_client_generated_by_wsimport_runs_the_flow(server, tmp_path):
    missing = [tool for tool in ("wsimport", "javac", "java") if shutil.which(tool) is None]
    if missing or not JAXWS_RUNTIME.exists():
        skip(f"needs wsimport, javac, java and {JAXWS_RUNTIME} "
                    f"(Debian package jaxws); missing: {missing or [str(JAXWS_RUNTIME)]}")
    wsdl = server.soap_url + "?wsdl"
    generated, classes = tmp_path / "generated", tmp_path / "classes"
    generated.mkdir()
    classes.mkdir()
    run(["wsimport", "-keep", "-Xnocompile", "-p", "org.pmcadapter.client",
         "-d", str(generated), wsdl])
    sources = sorted(str(path) for path in generated.rglob("*.java"))
    run(["javac", "-cp", str(JAXWS_RUNTIME), "-d", str(classes), *sources,
         str(INTEROP / "java" / "Flow.java")])
    result = run(["java", "-cp", f"{classes}:{JAXWS_RUNTIME}", "Flow", wsdl, unique("J")])
    assert "JAVA FLOW PASSED: 9 checks" in result.stdout


def test_node_soap_client_runs_the_flow(server):
    node_dir = INTEROP / "node"
    if shutil.which("node") is None or not (node_dir / "node_modules" / "soap").is_dir():
        skip("needs node and `npm ci` in tests/interop/node (scripts/test does it "
                    "where npm is installed)")
    result = run(["node", "flow.js", server.soap_url + "?wsdl", unique("N")], cwd=node_dir)
    assert "NODE FLOW PASSED: 8 checks" in result.stdout
