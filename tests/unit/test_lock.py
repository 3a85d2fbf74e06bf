"""The locks in requirements/ hold what setup.cfg asks for, pinned, with hashes.

scripts/serve, scripts/test and the Containerfile install the lock and then the
project with --no-deps: a dependency added to setup.cfg but not locked would be
missing there, and a range narrowed past the pin would be ignored. These tests
say which, by name, before a fresh machine does.
"""
from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.locks import locked

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"


def requirements(option: str, extra: str | None = None) -> list[Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    text = config["options.extras_require"][extra] if extra else config["options"][option]
    return [Requirement(line.split("#")[0].strip()) for line in text.splitlines()
            if line.split("#")[0].strip()]


def build_requirements() -> list[Requirement]:
    return [Requirement(line.split("#")[0].strip())
            for line in (LOCKS / "build.in").read_text().splitlines()
            if line.split("#")[0].strip()]


@pytest.mark.parametrize("lock, wanted", [
    ("serve.txt", lambda: requirements("install_requires") + build_requirements()),
    ("test.txt", lambda: requirements("install_requires") + build_requirements()
     + requirements("", extra="test")),
])
def test_the_lock_pins_every_requirement_within_its_range_with_hashes(lock, wanted):
    entries = locked(LOCKS / lock)
    problems = []
    for requirement in wanted():
        name = canonicalize_name(requirement.name)
        if name not in entries:
            problems.append(f"{requirement} is not in requirements/{lock}")
            continue
        version, _ = entries[name]
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"requirements/{lock} pins {name}=={version}, "
                            f"outside setup.cfg's {requirement}")
    problems += [f"requirements/{lock}: {name} has no hash"
                 for name, (_, hashes) in entries.items() if hashes == 0]
    assert not problems, "run scripts/lock:\n" + "\n".join(problems)


def test_the_two_locks_agree_on_every_package_they_share():
    serve, test = locked(LOCKS / "serve.txt"), locked(LOCKS / "test.txt")
    different = {name: (serve[name][0], test[name][0]) for name in serve.keys() & test.keys()
                 if serve[name][0] != test[name][0]}
    assert not different, f"serve.txt and test.txt pin differently: {different}"
    assert serve.keys() <= test.keys(), f"only in serve.txt: {serve.keys() - test.keys()}"
