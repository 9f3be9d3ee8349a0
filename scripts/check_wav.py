"""Check a generated file as CI does: it exists, lasts long enough, is finite and not silent.

Usage: python scripts/check_wav.py out.wav [--min-seconds 4]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import soundfile as sf


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--min-seconds", type=float, default=4.0)
    args = p.parse_args()
    try:
        data, sr = sf.read(args.path, dtype="float32", always_2d=True)
    except Exception as exc:  # missing or unreadable: say so, fail
        print(f"check_wav: {args.path}: {exc}", file=sys.stderr)
        return 1
    seconds, peak = len(data) / sr, float(np.abs(data).max()) if data.size else 0.0
    problems = []
    if seconds < args.min_seconds:
        problems.append(f"lasts {seconds:.2f} s < {args.min_seconds:g} s")
    if not np.isfinite(data).all():
        problems.append("holds NaN or infinite samples")
    if peak < 1e-3:
        problems.append(f"is silent (peak {peak:.2g})")
    if problems:
        print(f"check_wav: {args.path} " + "; ".join(problems), file=sys.stderr)
        return 1
    rms = float(np.sqrt(np.mean(data**2)))
    print(f"check_wav: {args.path}: {seconds:.2f} s at {sr} Hz, peak {peak:.3f}, rms {rms:.4f}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
