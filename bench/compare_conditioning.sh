#!/usr/bin/env bash
# Captions vs no captions (issue 19, MODEL_CARD "Conditioning"): the default recipe's train-ldm
# (MiniLM on the captions, dynamic reprogramming 0.25) against the same recipe with
# --condition clap-audio (AudioLDM: the CLAP audio embedding of each crop) on the corpus with its
# caption and phrases columns dropped, for the clips and the reprogramming events alike, so no
# text reaches that training. Same VAE, steps, batch, learning rate and seed. Both are scored by
# bench/bench_quality.py (CLAP score, zero-shot category accuracy, conditional FD) with the same
# category descriptions (--classes-from the text-conditioned bundle), then put side by side in
# bench/results/$NAME.json. Resumable: rerun the script after an interruption and every run
# continues where it stopped (finished runs and scores are kept; after raising STEPS, delete
# bench/results/$NAME_*.json to score the longer runs).
#
#   bench/compare_conditioning.sh [STEPS] [VAE_BUNDLE]  (defaults: 4000, the shipped default bundle)
#
# Environment: CORPUS (corpus), OUT (runs/conditioning), DEVICE (cpu; cuda on a GPU), PRESET
# (default), BATCH (16), CROP (5 s), PER (4 clips per category), DURATION (5 s), MIN_TRAIN (10),
# NAME (conditioning: result files $NAME_text.json, $NAME_clap_audio.json, $NAME.json),
# COND_CLAP (the CLAP the clap-audio model is conditioned on; the shipped one) and SCORE_CLAP (the
# CLAP that scores; the shipped one). When they are the same model the CLAP-based scores are
# measured in the space the clap-audio model was trained on, which may favour it: say so with
# the figures, or pass SCORE_CLAP=another CLAP (a bundle or a local HF ClapModel folder).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-4000}
VAE=${2:-maa/assets/default_bundle}
CORPUS=${CORPUS:-corpus}
OUT=${OUT:-runs/conditioning}
DEVICE=${DEVICE:-cpu}
PRESET=${PRESET:-default}
BATCH=${BATCH:-16}
CROP=${CROP:-5}
PER=${PER:-4}
DURATION=${DURATION:-5}
MIN_TRAIN=${MIN_TRAIN:-10}
NAME=${NAME:-conditioning}
COND_CLAP=${COND_CLAP:-maa/assets/clap}
SCORE_CLAP=${SCORE_CLAP:-maa/assets/clap}
PY=.venv/bin/python
M=.venv/bin/maa
[ -f "$CORPUS/manifest.parquet" ] || { echo "no corpus at $CORPUS: run 'make corpus'"; exit 2; }
[ -f "$VAE/vae.safetensors" ] || { echo "no VAE in $VAE (vae.safetensors)"; exit 2; }
mkdir -p "$OUT"

# the corpus without its text: the same rows, absolute audio paths, no caption/phrases columns
NOCAP="$OUT/uncaptioned.parquet"
if [ ! -f "$NOCAP" ]; then
  $PY - "$CORPUS/manifest.parquet" "$NOCAP" <<'EOF'
import os
import sys

from maa.manifest import audio_paths, read_manifest

src, dst = sys.argv[1:]
df = read_manifest(src)
df["audio_path"] = [str(p) for p in audio_paths(df)]
df = df.drop(columns=[c for c in ("caption", "phrases", "candidates") if c in df.columns])
df.to_parquet(dst + ".tmp", index=False)
os.replace(dst + ".tmp", dst)
print(f"wrote {dst}: {len(df)} clips, columns {', '.join(df.columns)}")
EOF
fi

declare -A DATA=(
  [text]="--manifest $CORPUS/manifest.parquet --reprogram $CORPUS/manifest.parquet"
  [clap-audio]="--manifest $NOCAP --reprogram $NOCAP --condition clap-audio --clap $COND_CLAP"
)
for name in text clap-audio; do
  dir="$OUT/$name"
  if [ ! -f "$dir/bundle.json" ]; then
    mkdir -p "$dir"
    cp "$VAE/bundle.json" "$VAE/vae.safetensors" "$dir/"
  fi
  resume=""
  [ -f "$dir/train/unet/state.pt" ] && resume="--resume"
  # shellcheck disable=SC2086
  $M train-ldm --bundle "$dir" --preset "$PRESET" --max-steps "$STEPS" --batch-size "$BATCH" \
    --crop-seconds "$CROP" --lr 3e-4 --warmup 100 --ema 0.999 --reprogram-prob 0.25 --seed 0 \
    --device "$DEVICE" --ckpt-every 200 ${DATA[$name]} $resume
  tag=${name//-/_}
  if [ ! -f "bench/results/${NAME}_${tag}.json" ]; then
    $PY bench/bench_quality.py --corpus "$CORPUS" --bundle "$dir" --clap "$SCORE_CLAP" \
      --classes-from "$OUT/text" --per-caption "$PER" --duration "$DURATION" \
      --min-train "$MIN_TRAIN" --work "$OUT/quality-$tag" --prompt --name "${NAME}_${tag}"
  fi
done

$PY - "$NAME" "$STEPS" "$COND_CLAP" "$SCORE_CLAP" <<'EOF'
import json
import sys
from pathlib import Path

sys.path.insert(0, ".")
from bench._common import RESULTS, report

name, steps, cond_clap, score_clap = sys.argv[1:]
rows = []
for tag, what in (("text", "captions (MiniLM)"), ("clap_audio", "no captions (CLAP audio)")):
    result = json.loads((RESULTS / f"{name}_{tag}.json").read_text())
    gen = next(r for r in result["rows"] if r["set"] == "generated")
    rows.append({"model": what, **{k: gen[k] for k in gen if k != "set"}})
real = next(r for r in result["rows"] if r["set"] == "real test")
rows.append({"model": "real test clips", **{k: real[k] for k in real if k != "set"}})
same = " (the same model: scores in the clap-audio model's own space)" if (
    Path(cond_clap).resolve() == Path(score_clap).resolve()) else ""
report(name, rows, f"{steps} steps each, same VAE/seed/recipe; conditioning CLAP {cond_clap}, "
       f"scoring CLAP {score_clap}{same}")
EOF
