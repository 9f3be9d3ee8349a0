#!/usr/bin/env bash
# The non-editable install, as a user without the source tree gets it: `pip install .` (with the
# lock) into a fresh venv, then `maa generate` from another folder. Proves the shipped assets
# (default bundle, CLAP, AudioSet labels, corpus rules) are package data.
set -euo pipefail
PYTHON=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet -c "$root/requirements.lock" --upgrade pip
"$tmp/venv/bin/python" -m pip install --quiet -c "$root/requirements.lock" "$root"
mkdir "$tmp/elsewhere"
cd "$tmp/elsewhere"
"$tmp/venv/bin/python" - <<'PY'
import importlib.resources as r
assets = r.files("maa") / "assets"
for name in ("default_bundle/bundle.json", "clap/bundle.json", "audioset_labels.txt",
             "corpus_rules.tsv"):
    assert (assets / name).is_file(), f"package data missing: maa/assets/{name}"
import maa
assert "site-packages" in maa.__file__, maa.__file__
print("package data present in", maa.__file__)
PY
"$tmp/venv/bin/maa" generate "a dog barking in rain" -o out.wav
"$tmp/venv/bin/python" "$root/scripts/check_wav.py" out.wav --min-seconds 4
echo "non-editable install: ok ($(du -sh "$tmp/venv" | cut -f1) venv)"
