#!/usr/bin/env bash
# `make lock`: resolve pyproject.toml's ranges afresh (torch held at $TORCH) in a throw-away
# venv and write the exact versions to requirements.lock. Run it deliberately, then run
# `make test` and commit the lock with the change that needed it.
set -euo pipefail
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-2.13.0}
LOCK=${LOCK:-requirements.lock}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
"$tmp/venv/bin/python" -m pip install --quiet "torch==$TORCH" ".[dev,video]"
{
    echo "# Exact versions that 'make install' and CI install (pip constraints file)."
    echo "# Written by 'make lock' ($(date -u +%Y-%m-%d), $("$tmp/venv/bin/python" -V), $(uname -m));"
    echo "# torch is held at $TORCH (make lock TORCH=X.Y.Z to move it). Local build labels are"
    echo "# dropped so the same line takes PyPI's CUDA build on a workstation."
    "$tmp/venv/bin/python" -m pip --version | awk '{print "pip==" $2}'
    "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^maa[= @]' | sed -E 's/^([A-Za-z0-9_.-]+==[^+ ]+)\+[^ ]*/\1/'
} > "$LOCK.tmp"
mv "$LOCK.tmp" "$LOCK"
echo "wrote $LOCK ($(grep -c '==' "$LOCK") pins)"
