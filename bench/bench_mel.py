"""Mel extraction throughput in seconds of audio per second (× real time), CPU and GPU."""

from __future__ import annotations

import argparse

import torch
from _common import report, timeit

from maa.mel import MEL_PRESETS, MelSpectrogram


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length")
    ap.add_argument("--batch", type=int, default=16, help="clips per call")
    args = ap.parse_args()
    repeat = 3 if args.quick else 10
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for name, preset in MEL_PRESETS.items():
        for device in devices:
            mel = MelSpectrogram(preset).to(device)
            wave = (0.1 * torch.randn(args.batch, int(args.seconds * preset.sample_rate))).to(
                device
            )
            with torch.inference_mode():
                t = timeit(lambda m=mel, w=wave: m(w), repeat=repeat, cuda=device == "cuda")
            audio_s = args.batch * args.seconds
            rows.append(
                {
                    "preset": name,
                    "device": device,
                    "batch": args.batch,
                    "clip_s": args.seconds,
                    "seconds_per_call": t,
                    "x_realtime": audio_s / t,
                }
            )
    report("mel", rows, notes="x_realtime = seconds of audio turned into log-mel per second")


if __name__ == "__main__":
    main()
