"""Vocoder speed (× real time) and resynthesis quality (log-mel L1).

Speed: the pretrained universal HiFi-GAN V1 on a synthetic log-mel, before (the package's own
generator code with weight norm, ``no_grad``) and after this toolkit's choices (weight norm
folded, ``inference_mode``, thread count, bf16 autocast on CPU; fp16/bf16 on CUDA when a GPU is
visible). ``cpu_s_per_audio_s`` is process CPU time per second of audio — the figure that stays
meaningful when other jobs share the cores (wall time then mostly measures the neighbours).

Quality: mean log-mel L1 between a recording's mel and the mel of its resynthesis, over the audio
files under ``--audio-dir`` (each cut to ``--max-seconds``), or over synthetic clips from
``maa.testing`` when no folder is given (the notes say which).

    python bench/bench_vocoder.py [--quick] [--audio-dir DIR] [--max-seconds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import report, timeit


def _original_generator():
    from maa.models.hifigan import universal_checkpoint

    root = universal_checkpoint().parent.parent
    spec = importlib.util.spec_from_file_location("hifigan_original", root / "models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Hparams(dict):
        __getattr__ = dict.__getitem__

    gen = mod.Generator(Hparams(json.loads((root / "data" / "config.json").read_text())))
    ckpt = torch.load(universal_checkpoint(), map_location="cpu", weights_only=True)
    gen.load_state_dict(ckpt["generator"])
    return gen.eval()


def _measure(fn, seconds: float, repeat: int, cuda: bool = False) -> dict:
    cpu0 = time.process_time()
    wall = timeit(fn, repeat=repeat, warmup=1, cuda=cuda)
    cpu = (time.process_time() - cpu0) / (repeat + 1)
    return {
        "audio_s": round(seconds, 2),
        "wall_s": wall,
        "x_real_time": seconds / wall,
        "cpu_s_per_audio_s": cpu / seconds,
    }


def speed_rows(seconds: float, repeat: int) -> list[dict]:
    from maa.mel import get_mel_preset
    from maa.vocoder import load_vocoder

    mel = get_mel_preset("default")
    frames = int(seconds * mel.sample_rate / mel.hop_length)
    g = torch.Generator().manual_seed(0)
    logmel = mel.floor + 8 * torch.rand(1, mel.n_mels, frames, generator=g)
    audio_s = frames * mel.hop_length / mel.sample_rate
    rows = []
    threads = sorted({1, os.cpu_count() or 1})
    original = _original_generator()
    for n in threads:
        torch.set_num_threads(n)
        with torch.no_grad():
            r = _measure(lambda: original(logmel), audio_s, repeat)
        rows.append({"variant": "before: original code, weight norm, no_grad", "threads": n, **r})
    voc = load_vocoder("default", mel, dtype="fp32")
    voc_bf16 = load_vocoder("default", mel, dtype="bf16")
    for n in threads:
        torch.set_num_threads(n)
        r = _measure(lambda: voc(logmel), audio_s, repeat)
        rows.append({"variant": "after: folded weight norm, inference_mode", "threads": n, **r})
        r = _measure(lambda: voc_bf16(logmel), audio_s, repeat)
        rows.append({"variant": "after + bf16 autocast (opt-in)", "threads": n, **r})
    if torch.cuda.is_available():
        gpu_mel = logmel.repeat(1, 1, 4)  # longer input: GPU timing needs more work per call
        gpu_s = 4 * audio_s
        for dtype in ("fp32", "fp16", "bf16"):
            gv = load_vocoder("default", mel, "cuda", dtype=dtype)
            r = _measure(lambda gv=gv: gv(gpu_mel), gpu_s, repeat * 3, cuda=True)
            rows.append({"variant": f"cuda {dtype} ({torch.cuda.get_device_name(0)})", **r})
    return rows


def _clips(audio_dir: str | None, sr: int, max_seconds: float) -> tuple[list, str]:
    from maa.audio import find_audio_files, load_audio

    if audio_dir:
        files = find_audio_files(audio_dir)
        if not files:
            raise SystemExit(f"{audio_dir}: no audio files found")
        out = []
        for f in files:
            wave, _ = load_audio(f, sr)
            out.append((f.name, wave[: int(max_seconds * sr)]))
        return out, f"{len(out)} real recordings from {audio_dir} (first {max_seconds:g} s each)"
    from maa.testing import make_clips

    out = [
        (f"{kind} {i}", w)
        for kind, waves in make_clips(sr, seconds=2.0, per_kind=1).items()
        for i, w in enumerate(waves)
    ]
    return out, f"{len(out)} synthetic clips (maa.testing; no --audio-dir given)"


def quality_rows(audio_dir: str | None, max_seconds: float) -> tuple[list[dict], str]:
    from maa.mel import MelSpectrogram, get_mel_preset
    from maa.vocoder import load_vocoder

    mel = get_mel_preset("default")
    mel_fn = MelSpectrogram(mel)
    clips, what = _clips(audio_dir, mel.sample_rate, max_seconds)
    vocoders = {
        "hifigan fp32": load_vocoder("default", mel),
        "hifigan bf16": load_vocoder("default", mel, dtype="bf16"),
        "griffin-lim": load_vocoder("griffin-lim", mel),
    }
    rows = []
    for name, wave in clips:
        logmel = mel_fn(wave)
        row = {"clip": name, "seconds": round(wave.numel() / mel.sample_rate, 2)}
        for key, voc in vocoders.items():
            out = voc(logmel)
            row[key] = float((mel_fn(out[0]) - logmel).abs().mean())
        rows.append(row)
        print(row, flush=True)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in vocoders}
    rows.append({"clip": "MEAN", "seconds": sum(r["seconds"] for r in rows), **mean})
    return rows, what


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 s of audio, 2 repeats")
    ap.add_argument("--audio-dir", default=None, help="folder of real recordings for quality")
    ap.add_argument("--max-seconds", type=float, default=5.0)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    if not args.skip_speed:
        rows = speed_rows(2.0 if args.quick else 4.0, 2 if args.quick else 3)
        notes = (
            f"universal HiFi-GAN V1, {os.cpu_count()} CPU core(s); load average at start "
            f"{load:.1f} (other jobs share the cores: compare cpu_s_per_audio_s). "
            "Anchors: HiFi-GAN paper V1 167.9x on a V100; BigVGAN-v2 70-82x on an A100."
        )
        report("vocoder_speed", rows, notes)
    if not args.skip_quality:
        torch.set_num_threads(1)
        rows, what = quality_rows(args.audio_dir, args.max_seconds)
        report("vocoder_quality", rows, f"mean log-mel L1 (ln units) of resynthesis over {what}")


if __name__ == "__main__":
    main()
