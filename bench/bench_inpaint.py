"""Trained vs zero-shot inpainting on held-out clips: log-mel L1 inside and outside the mask.

Each of the first ``--clips`` test-split clips of the manifest that last at least ``--min-seconds``
(cut to ``--max-seconds``) has the fixed ``--span`` regenerated from its own caption, once with
the bundle's text-to-audio U-Net (zero-shot: the known region imposed at every step) and once with
its ``unet_inpaint`` (``maa train-ldm --task inpaint``), same seed and sampler. Inside: mean
|log-mel(output) − log-mel(original)| over the masked mel cells (how close the regenerated span is
to what was really there; lower is better). Outside: the same over the kept cells (the paste-back
keeps the original samples, so only the crossfades and the mel frames that straddle them count).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_inpaint.py --bundle runs/inpaint-train/bundle
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from _common import report

from maa.edit import load_input
from maa.generate import INPAINT_UNET, Generator, SamplingSettings
from maa.inpaint import inpaint, parse_range
from maa.manifest import audio_paths, read_manifest


def held_out(manifest: Path, n: int, min_seconds: float) -> list[tuple[Path, str]]:
    """The first ``n`` test-split clips (by path) of at least ``min_seconds`` with a caption."""
    df = read_manifest(manifest)
    df = df[(df["split"] == "test") & (df["duration"] >= min_seconds)]
    df = df[df["caption"].str.strip() != ""].sort_values("audio_path")
    paths = audio_paths(df)
    return list(zip(paths[:n], df["caption"].tolist()[:n], strict=True))


def inside_l1(res) -> float:
    """Mean |log-mel(output) − log-mel(input)| over the mel cells the mask regenerates."""
    frames = min(res.input_mel.shape[-1], res.output_mel.shape[-1], res.mask.shape[-1])
    cells = res.mask[:, :frames] == 1
    diff = (res.output_mel[:, :frames] - res.input_mel[:, :frames]).abs()
    return float(diff[cells].mean())


def run(gen: Generator, clips, span, settings: SamplingSettings, max_seconds: float) -> dict:
    inside, outside, t0 = [], [], time.perf_counter()
    for path, caption in clips:
        wave = load_input(path, gen.mel)[: round(max_seconds * gen.mel.sample_rate)]
        res = inpaint(gen, wave, caption, [span], settings)
        inside.append(inside_l1(res))
        outside.append(res.outside_l1())
    n = len(inside)
    mean = sum(inside) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in inside) / max(n - 1, 1))
    return {
        "clips": n,
        "inside_l1": mean,
        "inside_l1_sem": sd / math.sqrt(n),
        "outside_l1": sum(outside) / n,
        "s_per_clip": (time.perf_counter() - t0) / n,
        "_inside": inside,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=Path("runs/inpaint-train/bundle"))
    ap.add_argument("--manifest", type=Path, default=Path("corpus/manifest.parquet"))
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--span", default="1.0:2.0", help="START:END seconds regenerated")
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--max-seconds", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    span = parse_range(args.span, "--span")
    clips = held_out(args.manifest, args.clips, args.min_seconds)
    settings = SamplingSettings(steps=args.steps, seed=args.seed)
    rows, per_clip = [], {}
    for method, unet in [("zero-shot (unet)", "unet"), ("trained (unet_inpaint)", INPAINT_UNET)]:
        gen = Generator.from_bundle(args.bundle, device=args.device, dtype="fp32", unet=unet)
        row = run(gen, clips, span, settings, args.max_seconds)
        per_clip[method] = row.pop("_inside")
        rows.append({"method": method, **row})
    zs, tr = per_clip.values()
    wins = sum(t < z for t, z in zip(tr, zs, strict=True))
    notes = (
        f"{len(clips)} test-split clips of {args.manifest} (≥ {args.min_seconds} s, cut to "
        f"{args.max_seconds} s), span {span[0]}–{span[1]} s regenerated from each clip's caption, "
        f"{args.steps} steps, seed {args.seed}; trained inside-L1 lower on {wins}/{len(clips)} "
        "clips. L1 in log-mel (natural log) units."
    )
    report("inpaint", rows, notes)


if __name__ == "__main__":
    main()
