# Sourced by scripts/serve and scripts/test: makes $ROOT/.venv (Python 3.11,
# which spyne 2.14 needs) and installs the project into it, on any fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$candidate"; return 0
        fi
    done
    echo "pmc-adapter needs Python 3.11 (spyne 2.14); set PYTHON=/path/to/python3.11" >&2
    return 1
}

if [ ! -x "$VENV/bin/python" ]; then
    "$(find_python)" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
target="$ROOT"
[ -z "${1:-}" ] || target="$ROOT[$1]"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --editable "$target"
