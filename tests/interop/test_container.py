"""The container image and the systemd unit: built and run where a container engine
answers; everywhere, the Containerfile is linted and its build context proven to build
the wheel it installs."""
from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from support.data import free_port

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"
UNIT = ROOT / "scripts" / "systemd" / "pmc-adapter.service"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in map(str.strip, text.splitlines()) if line and not line.startswith("#")]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_the_image_runs_unprivileged_from_the_wheel_with_a_healthcheck():
    steps = final_stage()
    words = [word for word, _ in steps]
    (base,) = [args for word, args in steps if word == "FROM"]
    assert re.fullmatch(r"python:3\.1[123]-slim", base), "a pinned, supported Python"
    user = [args for word, args in steps if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0"), "not root"
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN"), \
        "every RUN as root happens before USER"
    assert any(word == "COPY" and "--from=wheel" in args for word, args in steps)
    (install,) = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert re.search(r"pip install [^&]*--require-hashes -r /wheels/serve\.txt", install), \
        "every dependency from the lock, hash-checked"
    assert re.search(r"pip install [^&]*--no-deps [^&]*/wheels/\*\.whl", install), \
        "the project's wheel, adding nothing the lock does not hold"
    (build,) = [args for word, args in instructions() if word == "RUN" and "pip wheel" in args]
    assert "--no-build-isolation" in build, "built by the locked setuptools"
    (health,) = [args for word, args in steps if word == "HEALTHCHECK"]
    assert "/health" in health and "--timeout=" in health
    assert [args for word, args in steps if word == "ENTRYPOINT"] == ['["pmc-adapter"]']
    assert not any(word == "ADD" for word, _ in instructions()), "COPY, never ADD"


def context_files() -> list[Path]:
    """The files the build context holds: what .dockerignore lets through."""
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    kept = []
    for name in tracked:
        keep = True
        for rule in rules:
            negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(name, pattern) or name.startswith(pattern + "/") or \
                    fnmatch.fnmatch(name, pattern + "/*"):
                keep = negate
        if keep:
            kept.append(ROOT / name)
    return kept


def test_the_build_context_builds_the_wheel_the_image_installs(tmp_path):
    context = tmp_path / "context"
    for path in context_files():
        target = context / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    assert not (context / "tests").exists() and not (context / ".venv").exists()
    assert (context / "requirements" / "serve.txt").is_file(), "the lock the image installs"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir",
                    str(tmp_path / "wheels"), str(context)], check=True, capture_output=True,
                   timeout=600)
    (wheel,) = (tmp_path / "wheels").glob("pmc_adapter-*.whl")
    import zipfile
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "adapter/wsdl/pmc-adapter.wsdl" in names and "adapter/xsd/pmc-adapter.xsd" in names


def test_the_systemd_unit_starts_serve_unprivileged_and_stops_gracefully():
    sections = {name: {key: values[-1] for key, values in entries.items()}
                for name, entries in unit_sections(UNIT).items()}
    service = sections["Service"]
    assert service["ExecStart"].endswith("pmc-adapter serve")
    assert service["User"] not in ("root", "") and service["NoNewPrivileges"] == "yes"
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) >= 25
    assert sections["Install"]["WantedBy"] == "multi-user.target"
    if shutil.which("systemd-analyze"):
        result = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True,
                                text=True)
        assert "Unknown key" not in result.stderr and "Invalid" not in result.stderr, \
            result.stderr


def unit_sections(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return sections


@pytest.mark.parametrize("job", ["upload-fac", "fetch-cob"])
def test_the_timers_run_their_command_unprivileged_before_the_cutoff(job):
    from datetime import time as clock_time

    from adapter.domain.billing_base import DEFAULT_CUTOFF

    folder = UNIT.parent
    service = unit_sections(folder / f"pmc-adapter-{job}.service")["Service"]
    timer = unit_sections(folder / f"pmc-adapter-{job}.timer")["Timer"]
    command = service["ExecStart"][0].split()
    assert command[0].endswith("/pmc-adapter") and command[1] == job
    assert service["Type"] == ["oneshot"] and service["User"][0] not in ("root", "")
    assert service["NoNewPrivileges"] == ["yes"]
    installed = subprocess.run([str(Path(sys.executable).with_name("pmc-adapter")),
                                *command[1:], "--help"], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr  # the command the unit runs exists
    for when in timer["OnCalendar"]:
        assert when.endswith(" America/Argentina/Buenos_Aires")  # the network's clock
        if job == "upload-fac":
            hour, minute = map(int, when.split()[-2].split(":")[:2])
            assert clock_time(hour, minute) < DEFAULT_CUTOFF
    if job == "upload-fac":  # rejected invoices waiting is reported, not a failed run
        assert service["SuccessExitStatus"] == ["1"]
    if shutil.which("systemd-analyze"):
        for unit in (f"pmc-adapter-{job}.service", f"pmc-adapter-{job}.timer"):
            result = subprocess.run(["systemd-analyze", "verify", str(folder / unit)],
                                    capture_output=True, text=True)
            assert "Unknown key" not in result.stderr and "Invalid" not in result.stderr \
                and "Failed to parse" not in result.stderr, result.stderr


def engine() -> str | None:
    for name in ("podman", "docker"):
        if shutil.which(name) and subprocess.run(
                [name, "info"], capture_output=True, timeout=20).returncode == 0:
            return name
    return None


def test_the_image_builds_and_serves_read_only():
    name = engine()
    if name is None:
        pytest.skip("no container engine answers here (docker/podman info fails): "
                    "the Containerfile is linted above instead")
    tag = "pmc-adapter-test:latest"
    subprocess.run([name, "build", "-f", str(CONTAINERFILE), "-t", tag, str(ROOT)],
                   check=True, capture_output=True, timeout=1800)
    port = free_port()
    container = subprocess.run(
        [name, "run", "-d", "--rm", "--read-only", "--tmpfs", "/tmp", "--tmpfs",
         "/var/lib/pmc-adapter", "-p", f"127.0.0.1:{port}:8080", tag],
        check=True, capture_output=True, text=True).stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        assert requests.get(f"http://127.0.0.1:{port}/soap?wsdl", timeout=5).ok
        user = subprocess.run([name, "exec", container, "id", "-u"], capture_output=True,
                              text=True).stdout.strip()
        assert user == "10001"
    finally:
        subprocess.run([name, "stop", container], capture_output=True)
