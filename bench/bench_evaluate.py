"""Evaluation throughput: files/s of ``maa evaluate`` (PANNs + VGGish + CLAP), cold and cached.

Random-weight models in the official layouts stand in for the real checkpoints (the cost is
the same). N generated and N reference clips of ``--seconds`` are written as 16 kHz wav files;
the cold pass embeds all of them, the cached pass re-runs every metric from the feature cache.

    python bench/bench_evaluate.py --n 16                 # CPU throughput, 10 s clips
    python bench/bench_evaluate.py --n 1000 --prefill     # cached re-run at 1 000 clips
    python bench/bench_evaluate.py --quick

``--prefill`` skips the cold pass (1 000 ten-second clips take most of an hour on a laptop
CPU): the feature cache is filled with random arrays of the real shapes under the real cache
keys (weights hash + content hash), then ``evaluate`` is timed; it does everything a cached
re-run does — header reads, hashing every file, cache loads, all metric maths, the report.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, report

from maa.audio import write_audio
from maa.testing import bursts, chirp, noise, tone


def _clip(i: int, seconds: float, sr: int) -> torch.Tensor:
    kind = i % 4
    if kind == 0:
        return tone(110 + 7 * i % 2000, seconds, sr, harmonics=3)
    if kind == 1:
        return noise(seconds, sr, seed=i, lowpass=i % 8 == 1)
    if kind == 2:
        return chirp(100 + i % 500, 2000 + 13 * i % 4000, seconds, sr)
    return bursts(seconds, sr, rate_hz=2 + i % 6, seed=i)


def _write_set(
    root: Path, n: int, seconds: float, offset: int, with_captions: bool, fast: bool = False
) -> Path:
    from maa.manifest import write_manifest

    kinds = ("a tone", "noise", "a rising sweep", "knocking")
    rows = []
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rel = f"audio/clip_{i:05d}.wav"
        if fast:  # distinct content is all a cached re-run needs (it hashes the bytes)
            g = torch.Generator().manual_seed(i + offset)
            wave = 0.1 * torch.randn(int(seconds * 16000), generator=g)
        else:
            wave = _clip(i + offset, seconds, 16000)
        write_audio(root / rel, wave, 16000)
        rows.append((rel, f"the sound of {kinds[i % 4]}", seconds, 16000, "bench", "test"))
    cols = ["audio_path", "caption", "duration", "sample_rate", "source", "split"]
    if not with_captions:
        return root / "audio"
    return write_manifest(pd.DataFrame(rows, columns=cols), root / "manifest.parquet")


def _models(root: Path, with_clap: bool) -> dict[str, str]:
    from maa.models.panns import build_panns
    from maa.models.vggish import build_vggish

    torch.manual_seed(0)
    out = {"panns": str(root / "panns.pth"), "vggish": str(root / "vggish.pth")}
    torch.save(build_panns().state_dict(), out["panns"])
    torch.save(build_vggish().state_dict(), out["vggish"])
    if with_clap:
        from maa.bundle import Bundle
        from maa.clap import Clap, get_clap_config
        from maa.mel import get_mel_preset

        cfg = get_clap_config("default")
        bundle = Bundle.create(root / "clap", get_mel_preset(cfg.mel))
        bundle.save_module("clap", Clap(cfg), kind="clap", config=cfg.to_dict())
        out["clap"] = str(root / "clap")
    return out


def _prefill(gen: Path, ref: Path, models: dict[str, str], cache_dir: Path, seconds: float) -> None:
    """Fill the feature cache under the real keys with random features of the real shapes."""
    import hashlib

    import numpy as np

    from maa.device import resolve_device
    from maa.stages.eval_features import (
        FeatureCache,
        clap_backbone,
        collect_clips,
        file_digest,
        panns_backbone,
        vggish_backbone,
    )

    rng = np.random.default_rng(0)
    cache = FeatureCache(cache_dir)
    panns = panns_backbone(models["panns"], cache_dir)
    vgg = vggish_backbone(models["vggish"], cache_dir)
    clap = (
        clap_backbone(models["clap"], resolve_device("cpu"), cache_dir)
        if "clap" in models
        else None
    )
    frames = max(1, int((seconds * 16000 - 400) // 160 + 1) // 96)
    f32 = np.float32
    for label, src in (("generated", gen), ("reference", ref)):
        clips = collect_clips(src, label)
        for path in clips.paths:
            d = file_digest(path)
            emb = np.maximum(rng.standard_normal(2048), 0).astype(f32)
            logits = rng.standard_normal(527).astype(f32)
            cache.save(
                panns.identity, d, {"embedding": emb, "logits": logits, "padded": np.array(False)}
            )
            vf = rng.standard_normal((frames, 128)).astype(f32)
            cache.save(vgg.identity, d, {"frames": vf, "padded": np.array(False)})
            if clap is not None and label == "generated":
                a = rng.standard_normal(clap.model.cfg.embed_dim).astype(f32)
                cache.save(clap.identity, d, {"audio": a, "padded": np.array(False)})
        if clap is not None and label == "generated":
            for caption in set(clips.captions):
                t = rng.standard_normal(clap.model.cfg.embed_dim).astype(f32)
                key = hashlib.sha256(caption.encode("utf-8")).hexdigest()
                cache.save(clap.identity + "-text", key, {"text": t})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="clips per set (16 on CPU, 1000 on CUDA)")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--same", action="store_true", help="reference = copy of generated")
    ap.add_argument("--prefill", action="store_true", help="time only the cached re-run")
    ap.add_argument("--no-clap", action="store_true", help="leave the CLAP score out")
    ap.add_argument("--quick", action="store_true", help="4 clips of 2 s")
    args = ap.parse_args()
    n = args.n or (1000 if torch.cuda.is_available() else 16)
    seconds = args.seconds
    if args.quick:
        n, seconds = 4, 2.0
    from importlib.util import find_spec

    with_clap = not args.no_clap and find_spec("maa.clap") is not None

    from maa.stages.evaluate import EvalReport, evaluate

    tmp = Path(tempfile.mkdtemp(prefix="maa_bench_eval_"))
    try:
        t0 = time.perf_counter()
        gen = _write_set(tmp / "gen", n, seconds, 0, with_clap, args.prefill)
        if args.same:
            shutil.copytree(tmp / "gen", tmp / "ref")
            ref = tmp / "ref" / Path(gen).relative_to(tmp / "gen")
        else:
            ref = _write_set(tmp / "ref", n, seconds, 10_000, with_clap, args.prefill)
        models = _models(tmp, with_clap)
        setup_s = time.perf_counter() - t0
        metrics = "fd,fad,kl,is" + (",clap" if with_clap else "")

        def run(tag: str) -> tuple[float, EvalReport]:
            t = time.perf_counter()
            rep = evaluate(
                gen,
                ref,
                metrics,
                f"panns:{models['panns']}",
                models["vggish"],
                models.get("clap"),
                tmp / f"{tag}.json",
                device=args.device,
                batch_size=args.batch_size,
                cache_dir=tmp / "cache",
            )
            return time.perf_counter() - t, rep

        if args.prefill:
            # the first run reads per-file entries and writes one pack per set; the second is
            # the usual re-run (packs)
            _prefill(gen, ref, models, tmp / "cache", seconds)
            cold_s, rep = run("cached-files")
        else:
            cold_s, rep = run("cold")
        cached_s, rep2 = run("cached")
        assert all(v == n for v in rep2.generated.n_cached.values()), rep2.generated
        backbones = "+".join(rep.backbones)
        # with --same the reference files are cache hits of the generated ones in the cold pass
        embedded = 0 if args.prefill else (n if args.same else 2 * n)
        rows = [
            {
                "pass": p,
                "clips": f"{n}+{n}",
                "seconds/clip": seconds,
                "backbones": backbones,
                "files embedded": k,
                "wall_s": round(s, 3),
                "files/s": round(2 * n / s, 2) if k == 0 else round(k / s, 2),
                "device": str(args.device if args.device != "auto" else _auto()),
            }
            for p, s, k in (
                ("cached, per-file entries" if args.prefill else "cold", cold_s, embedded),
                ("cached re-run", cached_s, 0),
            )
        ]
        notes = (
            f"setup (writing clips, random models) {setup_s:.1f} s; peak RSS "
            f"{peak_rss_mb():.0f} MiB; --same={args.same} (reference identical to generated, "
            f"so the cold pass embeds each clip once); --prefill={args.prefill} (cache filled "
            "with random features of the real shapes, only the cached re-run timed); metrics: "
            + metrics
        )
        name = "evaluate_quick" if args.quick else f"evaluate_n{n}_{seconds:g}s"
        name += "_same" if args.same else ""
        name += "_prefill" if args.prefill else ""
        report(name, rows, notes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _auto() -> str:
    from maa.device import best_device

    return best_device()


if __name__ == "__main__":
    main()
