"""Reading the locks in requirements/ (pip-compile style: pins with hashes)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version


def locked(path: Path) -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, how many hashes), from a pip-compile-style lock."""
    entries: dict[str, tuple[Version, int]] = {}
    name = None
    for line in path.read_text().splitlines():
        pin = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line)
        if pin:
            name = canonicalize_name(pin[1])
            assert name not in entries, f"{path.name}: {name} pinned twice"
            assert line.rstrip().endswith("\\"), f"{path.name}: {name} has no hashes"
            entries[name] = (Version(pin[2]), 0)
        elif line.strip().startswith("--hash=sha256:") and name is not None:
            version, hashes = entries[name]
            entries[name] = (version, hashes + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            pytest.fail(f"{path.name}: a line that is neither a pin nor a hash: {line!r}")
    return entries
