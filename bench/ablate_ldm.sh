#!/usr/bin/env bash
# Diffusion-objective and data-sampling ablation (issue 20, MODEL_CARD "Ablations"): the same
# VAE, seed, steps and batch for every variant; each U-Net is then scored with
# bench/bench_quality.py. Resumable: rerun the script after an interruption and every run
# continues where it stopped (finished runs and scores are kept).
#
#   bench/ablate_ldm.sh [STEPS] [VAE_BUNDLE]      (defaults: 1500, the shipped default bundle)
#
# Variants: eps (the shipped objective), v+minsnr (v-prediction, min-SNR-γ 5), v+minsnr+balance
# (…and category-balanced draws, balance 0.5). Scores land in bench/results/ablation_<name>*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-1500}
VAE=${2:-maa/assets/default_bundle}
CORPUS=${CORPUS:-corpus}
OUT=${OUT:-runs/ablation}
PER=${PER:-4}
M=.venv/bin/maa
[ -f "$CORPUS/manifest.parquet" ] || { echo "no corpus at $CORPUS: run 'make corpus'"; exit 2; }

declare -A OPTS=(
  [eps]="--prediction epsilon"
  [v+minsnr]="--prediction v_prediction --min-snr-gamma 5"
  [v+minsnr+balance]="--prediction v_prediction --min-snr-gamma 5 --balance 0.5"
)
for name in eps v+minsnr v+minsnr+balance; do
  dir="$OUT/$name"
  if [ ! -f "$dir/bundle.json" ]; then
    mkdir -p "$dir"
    cp "$VAE/bundle.json" "$VAE/vae.safetensors" "$dir/"
    # the latent cache depends only on the VAE, text encoder and crop: build it once
    if [ -d "$OUT/eps/train/unet/cache" ] && [ "$name" != eps ]; then
      mkdir -p "$dir/train/unet" && cp -r "$OUT/eps/train/unet/cache" "$dir/train/unet/"
    fi
  fi
  resume=""
  [ -f "$dir/train/unet/state.pt" ] && resume="--resume"
  # shellcheck disable=SC2086
  $M train-ldm --manifest "$CORPUS/manifest.parquet" --bundle "$dir" --preset default \
    --max-steps "$STEPS" --batch-size 16 --crop-seconds 5 --lr 3e-4 --warmup 100 --ema 0.999 \
    --seed 0 --device cpu --ckpt-every 100 ${OPTS[$name]} $resume
  tag=${name//+/_}
  if [ ! -f "bench/results/ablation_${tag}.json" ]; then
    .venv/bin/python bench/bench_quality.py --corpus "$CORPUS" --bundle "$dir" \
      --per-caption "$PER" --work "$OUT/quality-$tag" --prompt --name "ablation_${tag}"
  fi
done
