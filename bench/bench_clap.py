"""CLAP embedding throughput: audio clips/s and captions/s of the ``default`` CLAP.

Runs on the CPU and, when CUDA is visible, on the GPU (fp32 and bf16 autocast). Untrained
weights: throughput does not depend on their values.

    python bench/bench_clap.py [--quick] [--seconds 5] [--batch 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, report, timeit

from maa.clap import Clap, get_clap_config

CAPTIONS = [
    "a dog barks twice in the distance",
    "rain falls on a tin roof while thunder rumbles",
    "footsteps on gravel",
    "a car engine starts and idles",
    "birds chirping in a forest with wind",
    "a man speaks while a crowd applauds",
    "water running from a tap into a sink",
    "a church bell rings",
]


def measure(device: str, preset: str, n_clips: int, seconds: float, batch: int, bf16: bool):
    model = Clap(get_clap_config(preset), batch_size=batch).to(device).eval()
    sr = model.sample_rate
    g = torch.Generator().manual_seed(0)
    clips = [0.1 * torch.randn(int(seconds * sr), generator=g) for _ in range(n_clips)]
    texts = [CAPTIONS[i % len(CAPTIONS)] + f" ({i})" for i in range(n_clips)]
    cuda = device.startswith("cuda")
    ctx = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if bf16
        else torch.autocast("cpu", enabled=False)
    )
    with ctx:
        t_audio = timeit(lambda: model.embed_audio(clips, sr), repeat=2, cuda=cuda)
        t_text = timeit(lambda: model.embed_text(texts), repeat=2, cuda=cuda)
    params = sum(p.numel() for p in model.parameters())
    return {
        "device": device + (" bf16" if bf16 else ""),
        "preset": preset,
        "clip_s": seconds,
        "batch": batch,
        "clips": n_clips,
        "audio_clips_per_s": n_clips / t_audio,
        "audio_x_realtime": n_clips * seconds / t_audio,
        "captions_per_s": n_clips / t_text,
        "trainable_params_M": params / 1e6,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer clips (a smoke run)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seconds", type=float, default=3.0, help="clip length in seconds")
    ap.add_argument("--batch", type=int, default=64, help="windows per forward pass")
    args = ap.parse_args()
    rows = []
    n = 16 if args.quick else 64
    rows.append(measure("cpu", args.preset, n, args.seconds, args.batch, bf16=False))
    if torch.cuda.is_available():
        n_gpu = 256 if args.quick else 2048
        for bf16 in (False, True):
            rows.append(measure("cuda", args.preset, n_gpu, args.seconds, args.batch * 4, bf16))
    report(
        "clap",
        rows,
        notes="embed_audio: windowing, log-mel front end, CNN and projection (clips of clip_s "
        "seconds at 22.05 kHz: one analysis window each with the default 3 s window; shorter "
        "clips cost the same, being tiled to one window). embed_text: tokenisation, MiniLM "
        "forward and projection. Untrained weights (speed does not depend on them).",
    )


if __name__ == "__main__":
    main()
