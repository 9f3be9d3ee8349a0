"""Throughput of `maa distill` (clips/s, CLAP + experts) and `maa reprogram` (s of audio / s).

Run: ``python bench/bench_distill.py [--quick] [--clap BUNDLE] [--clips N] [--seconds S]``.
Without ``--clap`` the ``default`` CLAP preset is built with random weights: the speed of a
forward pass does not depend on what the weights learned. On a CUDA machine the GPU path is
measured too. The one-time cost of embedding the retrieval bank (527 AudioSet names) is reported
separately from the per-clip throughput.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import peak_rss_mb, report
from maa.audio import write_audio
from maa.manifest import read_manifest, write_manifest
from maa.testing import bursts, chirp, noise, tone


def make_folder(root: Path, n: int, seconds: float, sr: int = 22050) -> list[Path]:
    """``n`` clips of ``seconds`` s in labelled folders (tones, noise, chirps, knocks)."""
    kinds = {
        "tone": lambda i: tone(200 + 37 * i, seconds, sr, harmonics=3),
        "rain_noise": lambda i: noise(seconds, sr, seed=i, lowpass=i % 2 == 0),
        "siren_chirp": lambda i: chirp(300 + i, 2000 + 10 * i, seconds, sr),
        "footsteps": lambda i: bursts(seconds, sr, rate_hz=2 + i % 5, seed=i),
    }
    paths = []
    for i in range(n):
        kind = list(kinds)[i % len(kinds)]
        (root / kind).mkdir(parents=True, exist_ok=True)
        paths.append(write_audio(root / kind / f"{kind}_{i:05d}.wav", kinds[kind](i), sr))
    return paths


def load_or_build_clap(spec: str | None, device: str):
    from maa.clap import load_clap
    from maa.models.clap import Clap, get_clap_config

    if spec:
        return load_clap(spec, device)
    return Clap(get_clap_config("default")).to(device).eval()


def bench_distill(audio: Path, work: Path, clap, device: str, batch: int, n: int) -> list[dict]:
    from maa.stages.distill import distill
    from maa.stages.experts import LabelExpert, RetrievalExpert, audioset_captions

    rows = []
    t0 = time.perf_counter()
    retrieval = RetrievalExpert(clap, audioset_captions(), top_k=5)
    retrieval.bank_embeddings()
    bank_s = time.perf_counter() - t0
    # warm-up on a few clips (thread pools, allocator, cuDNN autotune)
    distill(audio, work / "warm.parquet", [LabelExpert()], clap, batch_size=batch,
            progress=False, log=lambda _: None, shard="0/8")  # fmt: skip
    for name, experts, model in (
        ("label only, no CLAP", [LabelExpert()], None),
        ("label + CLAP rerank", [LabelExpert()], clap),
        ("label + retrieval + CLAP", [LabelExpert(), retrieval], clap),
    ):
        out = work / f"{name.replace(' ', '_').replace('+', '')}_{device}.parquet"
        s = distill(audio, out, experts, model, batch_size=batch, progress=False,
                    log=lambda _: None)  # fmt: skip
        rows.append({
            "task": f"distill: {name}", "device": device if model is not None else "cpu",
            "clips": n, "batch": batch, "seconds": round(s.elapsed, 2),
            "clips_per_s": round(s.clips_per_s, 1),
        })  # fmt: skip
    rows.append({"task": "retrieval bank (527 texts), once", "device": device, "clips": 0,
                 "batch": 0, "seconds": round(bank_s, 2), "clips_per_s": ""})  # fmt: skip
    return rows


def bench_reprogram(audio: list[Path], work: Path, n: int, seconds: float) -> list[dict]:
    from maa.stages.reprogram import Reprogrammer, reprogram

    rows = []
    recs = [{"audio_path": str(p), "caption": p.parent.name.replace("_", " "),
             "duration": seconds, "sample_rate": 22050, "source": "bench", "split": "train"}
            for p in audio]  # fmt: skip
    write_manifest(pd.DataFrame(recs), work / "pairs.parquet")
    df = read_manifest(work / "pairs.parquet")
    rp = Reprogrammer.from_manifests(df, df, 22050, max_seconds=10.0, max_extra=2, min_extra=1)
    for p in df["audio_path"]:
        rp.load(p)  # in memory, as in a training run's steady state
    t0, total = time.perf_counter(), 0.0
    for i in range(n):
        c = rp.sample_pair(i % len(df), torch.Generator().manual_seed(i))
        total += c.wave.numel() / 22050
    dt = time.perf_counter() - t0
    rows.append({"task": f"reprogram dynamic (in memory, {torch.get_num_threads()} threads)",
                 "device": "cpu", "clips": n,
                 "seconds": round(dt, 2), "audio_s_per_s": round(total / dt, 1)})  # fmt: skip
    s = reprogram(work / "pairs.parquet", work / "pairs.parquet", work / "rp.parquet",
                  work / "rp_wav", n=n, seed=0, progress=False)  # fmt: skip
    rows.append({"task": "reprogram static (read + write wav)", "device": "cpu", "clips": n,
                 "seconds": round(s.elapsed, 2),
                 "audio_s_per_s": round(s.seconds / s.elapsed, 1)})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="64 clips instead of 512")
    ap.add_argument("--clips", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=5.0, help="clip length, s")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--clap", default=None, help="bundle or HF CLAP folder (default: random)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    ap.add_argument("--name", default="distill", help="results file bench/results/NAME.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.clips or (64 if args.quick else 512)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = make_folder(work / "audio", n, args.seconds)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            clap = load_or_build_clap(args.clap, device)
            batch = args.batch if device == "cpu" else max(args.batch, 128)
            rows += bench_distill(work / "audio", work, clap, device, batch, n)
        rows += bench_reprogram(paths[: min(n, 128)], work, min(n, 128), args.seconds)
    model = args.clap or "default preset (random weights)"
    notes = f"{n} synthetic clips of {args.seconds} s at 22.05 kHz; CLAP {model}; "
    notes += f"peak RSS {peak_rss_mb():.0f} MiB"
    notes += f"; torch threads {torch.get_num_threads()} (reprogram static composes with 1)"
    report(args.name, rows, notes)


if __name__ == "__main__":
    main()
