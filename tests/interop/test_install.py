"""The sdist and the wheel carry everything, and install and run on every supported Python.

Once per session, ``python -m build`` makes the sdist and, from it, the wheel,
of a copy of the checkout as it is on disk (not of an earlier build's
leftovers). Then, for each supported Python found on this machine (by name on
``PATH``, then under pyenv), a fresh virtual environment gets the wheel with its
dependencies, as ``pip install`` does anywhere, and from that environment
alone ``pmc-adapter serve`` answers in front of ``pmc-adapter erp-sim``: a
``ConsultarDeuda`` lists the ERP's invoice, and an ``InformarPago`` of it
reaches the ERP. The installs run in the background, two at a time, from the
first of these tests on. The sdist is not installed apart: the wheel is what
``build`` made of it, so the wheel's install is the sdist's (the sdist's
content is checked below).

A supported Python not found is skipped, with the reason -- unless
``PMC_ADAPTER_TEST_REQUIRE_PYTHONS=1`` (as in CI), where it fails.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import zeep
from packaging.utils import canonicalize_name

import adapter
from adapter.domain.calendar import BUSINESS_TZ
from support.data import free_port, today, unique
from support.servers import ERP_CSV_HEADER, wait_until
from support.locks import locked

REPO = Path(__file__).resolve().parents[2]
SUPPORTED = ("3.11", "3.12", "3.13")  # as setup.cfg's python_requires and classifiers say
REQUIRE_PYTHONS = os.environ.get("PMC_ADAPTER_TEST_REQUIRE_PYTHONS") == "1"
# what a clone has, less what builds, installs and test runs leave behind
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "node_modules", ".pytest_cache",
    ".hypothesis", "__pycache__", "*.py[cod]", "*.sqlite3", "*.sqlite3-*")


# -- interpreters -------------------------------------------------------------------

def version_of(python: str) -> str | None:
    """``"3.12"`` for an interpreter that runs (a pyenv shim of a version pyenv has
    not selected is on PATH, but does not run)."""
    try:
        result = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=60)
        if found.returncode == 0 and found.stdout.strip():
            return Path(found.stdout.strip())
    return None


def looked_for(version: str) -> list[str]:
    names = [f"python{version}", "python3"]
    root = pyenv_root()
    if root is not None:
        releases = [path for path in (root / "versions").glob(f"{version}.*")
                    if re.fullmatch(rf"{re.escape(version)}\.\d+", path.name)]
        releases.sort(key=lambda path: int(path.name.rpartition(".")[2]), reverse=True)
        names += [str(path / "bin" / f"python{version}") for path in releases]
    return names


@functools.cache
def find_python(version: str) -> str | None:
    for candidate in looked_for(version):
        path = shutil.which(candidate)
        if path and version_of(path) == version:
            return path
    return None


@dataclass(frozen=True)
class Target:
    kind: str  # "wheel" (a distribution of `distributions`)
    version: str

    def __str__(self) -> str:
        return f"{self.kind}-py{self.version}"


TARGETS = [Target("wheel", version) for version in SUPPORTED]


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment less what would make a subprocess use anything but its
    own virtual environment and the settings given here (PYTHONPATH, VIRTUAL_ENV,
    PMC_ADAPTER_*)."""
    return {**{key: value for key, value in os.environ.items()
               if not key.startswith(("PYTHON", "VIRTUAL_ENV", "PMC_ADAPTER_", "__PYVENV"))},
            **extra}


def run(command: list, log: Path, timeout: float, **kwargs) -> None:
    with open(log, "ab") as output:
        output.write(f"$ {' '.join(map(str, command))}\n".encode())
        output.flush()
        result = subprocess.run([str(part) for part in command], stdout=output,
                                stderr=subprocess.STDOUT, timeout=timeout,
                                env=clean_environment(), **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{command[0]} ... exited {result.returncode}:\n"
                             + log.read_text(errors="replace")[-6000:])


# -- the build -----------------------------------------------------------------------

@pytest.fixture(scope="session")
def distributions(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE, symlinks=True)
    run([sys.executable, "-m", "build", "--outdir", work / "dist", source],
        work / "build.log", timeout=900, cwd=work)
    (wheel,) = (work / "dist").glob("pmc_adapter-*.whl")
    (sdist,) = (work / "dist").glob("pmc_adapter-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def shipped() -> list[str]:
    """What an installed adapter needs, as paths inside the installed package: every
    module and data file of ``adapter/``, and the contract files of ``wsdl/`` and ``xsd/``."""
    files = [path.relative_to(REPO).as_posix() for path in (REPO / "adapter").rglob("*")
             if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"]
    files += [f"adapter/wsdl/{path.name}" for path in (REPO / "wsdl").glob("*.wsdl")]
    files += [f"adapter/xsd/{path.name}" for path in (REPO / "xsd").glob("*.xsd")]
    return sorted(files)


def test_the_wheel_and_the_sdist_carry_every_module_and_contract_file(distributions):
    needed = shipped()
    assert "adapter/erp/connector.py" in needed and "adapter/wsdl/legacy-erp.wsdl" in needed
    assert "adapter/storage/migrations/script.py.mako" in needed
    with zipfile.ZipFile(distributions["wheel"]) as wheel:
        assert sorted(set(needed) - set(wheel.namelist())) == []
    with tarfile.open(distributions["sdist"]) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    # the sdist keeps the repository's layout: the contract at the top
    in_sdist = [re.sub(r"^adapter/(wsdl|xsd)/", r"\1/", name) for name in needed]
    assert sorted(set(in_sdist) - names) == []
    assert {"setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.rst"} <= names


# -- fresh virtual environments ---------------------------------------------------------

@dataclass
class Installed:
    venv: Path
    seconds: float
    versions: dict[str, str]  # what pip installed: canonical name -> version

    def drift(self) -> str:
        """The installed versions that are not requirements/serve.txt's, one per line: what
        the newest versions allowed changed, to name in a failure."""
        pins = {name: str(version) for name, (version, _) in
                locked(REPO / "requirements" / "serve.txt").items()}
        lines = [f"  {name} {version} (the lock has {pins.get(name, 'none')})"
                 for name, version in sorted(self.versions.items())
                 if pins.get(name) != version and name != "pmc-adapter"]
        return ("installed, unlike requirements/serve.txt:\n" + "\n".join(lines)) if lines \
            else "installed exactly requirements/serve.txt's versions"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def install(python: str, distribution: Path, where: Path) -> Installed:
    started = time.monotonic()
    where.mkdir(parents=True, exist_ok=True)
    log = where / "install.log"
    run([python, "-m", "venv", where / "venv"], log, timeout=300)
    # pip's cache is reused; dependencies come from the package index, as anywhere
    run([where / "venv" / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check",
         "--no-input", "--progress-bar", "off", distribution], log, timeout=1200, cwd=where)
    listed = subprocess.run([where / "venv" / "bin" / "python", "-m", "pip", "list",
                             "--disable-pip-version-check", "--format=json"],
                            capture_output=True, text=True, timeout=120, check=True,
                            env=clean_environment())
    versions = {canonicalize_name(entry["name"]): entry["version"]
                for entry in json.loads(listed.stdout)}
    return Installed(where / "venv", time.monotonic() - started, versions)


@pytest.fixture(scope="session")
def installs(request, distributions, tmp_path_factory):
    """A future install for every selected target whose Python is here, started at once."""
    selected = []
    for item in request.session.items:
        target = getattr(getattr(item, "callspec", None), "params", {}).get("target")
        if isinstance(target, Target) and target not in selected:
            selected.append(target)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="install")
    futures: dict[Target, Future] = {}
    root = tmp_path_factory.mktemp("installs")
    for target in selected:
        python = find_python(target.version)
        if python is not None:
            futures[target] = pool.submit(install, python, distributions[target.kind],
                                          root / str(target))
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


# -- from the installed environment alone ----------------------------------------------

class Process:
    """A ``pmc-adapter`` command of an installed environment, serving on a free port."""

    def __init__(self, installed: Installed, workdir: Path, name: str, args: list[str],
                 **environment: str):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                [str(installed.bin / "pmc-adapter"), *args, "--bind", f"127.0.0.1:{self.port}"],
                stdout=output, stderr=subprocess.STDOUT, cwd=workdir,
                env=clean_environment(**environment))

    def wait_healthy(self) -> "Process":
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"exited {self.process.returncode}:\n{self.output()}")
            try:
                return requests.get(self.base_url + "/health", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return False
        wait_until(healthy, timeout=120, interval=0.2, what=f"{self.log.stem} to answer /health")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_installs_in_a_fresh_environment_and_serves_in_front_of_the_erp(
        target, installs, tmp_path, record_property):
    if target not in installs:
        reason = (f"no Python {target.version} here (looked for "
                  f"{', '.join(looked_for(target.version))})")
        if REQUIRE_PYTHONS:
            pytest.fail(reason + "; PMC_ADAPTER_TEST_REQUIRE_PYTHONS=1 wants every supported "
                        f"Python ({', '.join(SUPPORTED)})")
        pytest.skip(reason)
    installed = installs[target].result()
    record_property("install_seconds", round(installed.seconds, 1))
    started = time.monotonic()
    try:
        serves_in_front_of_the_erp(target, installed, tmp_path)
    except BaseException as error:
        # the newest versions setup.cfg allows, not the lock's: name what differs
        error.add_note(f"{target}: {installed.drift()}")
        raise
    record_property("run_seconds", round(time.monotonic() - started, 1))
    print(f"{target}: installed in {installed.seconds:.0f} s, ran in "
          f"{time.monotonic() - started:.0f} s")


def serves_in_front_of_the_erp(target: Target, installed: Installed, tmp_path: Path) -> None:
    version = subprocess.run([installed.bin / "pmc-adapter", "--version"], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path, env=clean_environment())
    assert (version.returncode, version.stdout.strip()) == (0, f"pmc-adapter {adapter.__version__}")
    probe = subprocess.run(
        [installed.bin / "python", "-c", "import sys, adapter; from adapter.soap import contract; "
         "print(sys.version_info[:2]); print(adapter.__file__); "
         "print(contract.wsdl_dir() / 'legacy-erp.wsdl'); print(contract.xsd_path())"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=clean_environment())
    assert probe.returncode == 0, probe.stderr
    running, *paths = probe.stdout.splitlines()
    assert running == str(tuple(map(int, target.version.split("."))))
    for path in map(Path, paths):  # the installed package and its contract, not the checkout's
        assert path.is_file() and installed.venv in path.parents, path

    invoice, due = unique("EI-"), today() + timedelta(days=10)
    csv = tmp_path / "erp-invoices.csv"
    csv.write_text(f"{ERP_CSV_HEADER}\nC1,{invoice},ARS,{due},150.00,,,,\n")
    erp = Process(installed, tmp_path, "erp-sim",
                  ["erp-sim", "--invoices", str(csv), "--state", str(tmp_path / "erp-state.json")])
    server = None
    try:
        erp.wait_healthy()
        server = Process(installed, tmp_path, "serve", ["serve"],
                         PMC_ADAPTER_DATABASE_URL=f"sqlite:///{tmp_path / 'adapter.sqlite3'}",
                         PMC_ADAPTER_EMPRESAS="1234", PMC_ADAPTER_WORKERS="1",
                         PMC_ADAPTER_ERP_WSDL=erp.base_url + "/erp?wsdl", PMC_ADAPTER_ERP_TIMEOUT="10",
                         PMC_ADAPTER_FORWARD_POLL="0.2", PMC_ADAPTER_FORWARD_RETRY_BASE="0.2")
        server.wait_healthy()  # 200: the schema is at the migrations' head

        pmc = zeep.Client(server.base_url + "/soap?wsdl")
        debt = pmc.service.ConsultarDeuda(idEmpresa="1234", idCliente="C1")
        assert debt.codigoRespuesta == 0, server.output()
        assert [(f.idFactura, f.importeAPagar, f.origen) for f in debt.facturas.factura] == [
            (invoice, Decimal("150.00"), "ERP")]

        operation = unique("OP")
        paid = pmc.service.InformarPago(
            idEmpresa="1234", idOperacion=operation, idCliente="C1", idFactura=invoice,
            importe="150.00", moneda="ARS",
            fechaPago=datetime.now(BUSINESS_TZ).replace(microsecond=0).isoformat())
        assert paid.codigoRespuesta == 0, server.output()

        def forwarded():
            state = requests.get(erp.base_url + "/_sim/state", timeout=10).json()
            return state["payments"].get(operation)
        assert wait_until(forwarded, timeout=60, what="the ERP to receive the payment") == {
            "received": 1, "applied": 1}
    except BaseException:
        print(f"--- serve:\n{server.output() if server else ''}\n--- erp-sim:\n{erp.output()}")
        raise
    finally:
        if server is not None:
            server.stop()
        erp.stop()
