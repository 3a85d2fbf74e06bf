"""The manual (docs/) and the front page (README.rst) stay true.

The manual builds with every warning an error: its configuration tables come from
adapter/config.py, every path it names exists (the ``:source:`` role), and every
reference resolves. Its runnable examples (``.. runnable::``, collected by the build
into runnable.json) are run, in order, against a live server, and each answer must
show the lines the manual shows. The README is short, and renders without a warning
(it is the package's long_description).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import docutils.core
import docutils.utils
import pytest

from adapter import config
from support.servers import start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_ADDRESS = "127.0.0.1:8080"


@pytest.fixture(scope="module")
def manual(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("manual")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(out)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, f"the manual does not build cleanly:\n{build.stderr}"
    return out


def test_the_manual_builds_with_no_warning(manual):
    pages = {path.stem for path in manual.glob("*.html")}
    assert {"index", "getting-started", "configuration", "contract", "security", "pmc-api",
            "billing-base", "legacy-erp", "operations", "erp-teams", "qa", "design",
            "benchmarks"} <= pages


def test_the_configuration_page_lists_every_key(manual):
    page = (manual / "configuration.html").read_text()
    for keys in (config.ADAPTER_KEYS, config.CALLER_KEYS, config.OPERATOR_KEYS,
                 config.BILLER_KEYS):
        for name in keys:
            assert f">{name}<" in page, name
    assert "PMC_ADAPTER_EMPRESAS" in page


@pytest.mark.parametrize("keys", ["ERP_KEYS", "PMC_API_KEYS", "FTPS_KEYS", "ADAPTER_KEYS",
                                  "CALLER_KEYS", "OPERATOR_KEYS", "BILLER_KEYS"])
def test_every_setting_key_has_a_meaning(keys):
    missing = [name for name, key in getattr(config, keys).items()
               if not (isinstance(key, config.Key) and key.doc.strip())]
    assert not missing, f"{keys}: no meaning for {', '.join(missing)}"


# -- the runnable examples --------------------------------------------------------------

@pytest.fixture(scope="module")
def examples(manual) -> list[dict]:
    found = json.loads((manual / "runnable.json").read_text())
    assert found, "the manual has no runnable example"
    return found


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A fresh server of one biller, no callers: the server the examples assume."""
    workdir = tmp_path_factory.mktemp("docs-server")
    server = start_server(f"sqlite:///{workdir / 'docs.sqlite3'}", workdir,
                          PMC_ADAPTER_EMPRESAS="1234")
    yield server
    stop_server(server)


def shown_lines_in(output: str, shown: str) -> list[str]:
    """The lines of ``shown`` not found in ``output``, in order (``...``: anything)."""
    missing, at = [], 0
    for line in filter(None, (line.strip() for line in shown.splitlines())):
        pattern = ".*?".join(re.escape(part) for part in line.split("..."))
        match = re.compile(pattern).search(output, at)
        if match is None:
            missing.append(line)
        else:
            at = match.end()
    return missing


def test_the_examples_answer_as_the_manual_shows(examples, live):
    address = live.base_url.removeprefix("http://")
    for example in examples:  # in the manual's order: one builds on the one before
        commands = example["commands"].replace(DOCUMENTED_ADDRESS, address)
        ran = subprocess.run(["bash", "-euo", "pipefail", "-c", commands],
                             capture_output=True, text=True, timeout=60)
        where = f"{Path(example['source']).name}:{example['line']} ({example['name']})"
        assert ran.returncode == 0, f"{where} failed:\n{ran.stderr}"
        shown = example["output"].replace(DOCUMENTED_ADDRESS, address)
        missing = shown_lines_in(ran.stdout, shown)
        assert not missing, f"{where}: the answer lacks {missing}:\n{ran.stdout}"


def test_an_answer_that_differs_from_the_manual_is_caught():
    answer = "<a><tns:codigoRespuesta>3</tns:codigoRespuesta><tns:idRecibo>X1</tns:idRecibo>"
    assert shown_lines_in(answer, "<tns:codigoRespuesta>3</tns:codigoRespuesta>\n"
                                  "<tns:idRecibo>...</tns:idRecibo>") == []
    assert shown_lines_in(answer, "<tns:codigoRespuesta>0</tns:codigoRespuesta>") != []
    assert shown_lines_in(answer, "<tns:idRecibo>...</tns:idRecibo>\n"
                                  "<tns:codigoRespuesta>3</tns:codigoRespuesta>") != []


# -- the front page -----------------------------------------------------------------------

def test_the_readme_is_a_front_page():
    text = (ROOT / "README.rst").read_text()
    assert len(text.splitlines()) <= 150
    for command in ("scripts/serve", "scripts/test", "scripts/erp-sim", "pmc-sim",
                    "sphinx-build -W"):
        assert command in text


def test_the_readme_renders_without_a_warning():
    text = (ROOT / "README.rst").read_text()
    try:
        docutils.core.publish_doctree(text, settings_overrides={
            "halt_level": 2, "report_level": 2, "warning_stream": False})
    except docutils.utils.SystemMessage as message:
        pytest.fail(f"README.rst does not render cleanly: {message}")


def test_the_readme_names_every_page_of_the_manual():
    text = (ROOT / "README.rst").read_text()
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.rst") if path.stem != "index")
    assert [page for page in pages if f"docs/{page}" not in text] == []
