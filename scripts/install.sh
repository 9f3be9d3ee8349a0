#!/usr/bin/env bash
# `make install`: a virtual environment with the exact versions of requirements.lock and maa
# itself (editable). Safe to rerun: it does nothing when the venv is healthy and up to date,
# and rebuilds one whose Python no longer starts.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
LOCK=${LOCK:-requirements.lock}
SPEC=${SPEC:-.[dev,video]}  # developers and CI test the video extra too
STAMP=$VENV/.installed

fail() { echo "error: $*" >&2; exit 2; }

command -v "$PYTHON" >/dev/null || fail "'$PYTHON' not found; pass PYTHON=/path/to/python3.11 (maa installs on Python 3.11–3.13)"
"$PYTHON" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)' ||
    fail "$("$PYTHON" -c 'import sys; print(sys.executable, "is Python", sys.version.split()[0])'); maa installs on Python 3.11–3.13 (pass PYTHON=python3.11)"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
    fail "$PYTHON cannot create virtual environments: install the venv module (Debian/Ubuntu: apt-get install python3-venv)"
[ -f "$LOCK" ] || fail "$LOCK is missing; restore it from git or run 'make lock'"

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt "$LOCK" ] &&
    "$VENV/bin/maa" --version >/dev/null 2>&1; then
    exit 0  # healthy and up to date
fi
if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "$VENV is broken (its Python does not start): recreating it"
    rm -rf "$VENV"
fi
rm -f "$STAMP"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# pip itself is pinned in the lock too; pip's own error is shown if the registry is unreachable
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$LOCK" --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c "$LOCK" -e "$SPEC"
"$VENV/bin/maa" --version
touch "$STAMP"
