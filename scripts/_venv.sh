# Sourced by scripts/serve, scripts/test and scripts/erp-sim: makes $ROOT/.venv
# and installs the locked dependencies and the project (editable) into it, on any
# fresh machine.
#
# Python: 3.11, 3.12 or 3.13 -- $PYTHON if set, else the newest of python3.13,
# python3.12, python3.11 on PATH that runs, else python3 if it is one of them.
# An existing .venv of a supported version is kept, unless $PYTHON asks for
# another version; one of an unsupported version (or broken) is made anew.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
SUPPORTED="3.11 3.12 3.13"  # keep in step with setup.cfg's python_requires

python_version() {  # "3.12" for an interpreter that runs, nothing otherwise
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}

supported() {
    case " $SUPPORTED " in *" $1 "*) [ -n "$1" ] ;; *) return 1 ;; esac
}

find_python() {
    local candidate version
    if [ -n "${PYTHON:-}" ]; then
        version="$(python_version "$PYTHON")"
        if supported "$version"; then echo "$PYTHON"; return 0; fi
        [ -n "$version" ] && version="is Python $version" || version="does not run"
        echo "pmc-adapter: PYTHON=$PYTHON $version; pmc-adapter needs Python ${SUPPORTED// /, }" >&2
        return 1
    fi
    # (a pyenv shim of a version pyenv has not selected is on PATH but does not run)
    for candidate in python3.13 python3.12 python3.11 python3; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if supported "$(python_version "$candidate")"; then echo "$candidate"; return 0; fi
    done
    echo "pmc-adapter needs Python 3.11, 3.12 or 3.13 (spyne 2.14 and the other" \
         "dependencies), and none of python3.13, python3.12, python3.11, python3 on" \
         "PATH is one: install one, or set PYTHON=/path/to/python3.X" >&2
    return 1
}

have="$( [ -x "$VENV/bin/python" ] && python_version "$VENV/bin/python" || true)"
if ! supported "$have" || { [ -n "${PYTHON:-}" ] && [ "$have" != "$(python_version "$PYTHON")" ]; }; then
    python="$(find_python)"
    if [ -e "$VENV" ]; then
        echo "pmc-adapter: making $VENV anew with $python (its Python: ${have:-none that runs})" >&2
        rm -rf "$VENV"
    fi
    "$python" -m venv "$VENV"
fi
# Every package from the lock (scripts/lock writes it), hash-checked: serve.txt, or
# test.txt for "test"; then the project itself, editable, built by the locked
# setuptools (no build isolation: nothing unlocked is fetched) and adding nothing.
lock="$ROOT/requirements/${1:-serve}.txt"
if [ ! -f "$lock" ]; then
    echo "pmc-adapter: no lock $lock (scripts/lock writes it)" >&2
    exit 1
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$lock"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation --editable "$ROOT"
