"""Load check: batch generation over many prompts and evaluation over many files keep memory
flat and resume after an interruption without redoing finished items.

It measures the loops, not the models: generation uses a bundle of random tiny models (the
``maa.testing.tiny_bundle`` debug bundle, 1 step, 1 s clips, the packaged HiFi-GAN) and
evaluation the shipped CLAP on synthetic one-second clips. Each run is a fresh ``maa`` process
whose resident memory is sampled every 0.1 s (psutil); an interrupted run is killed with SIGKILL
once a given number of its outputs exist, then run again.

    python bench/bench_load.py            # 100 and 1,000 prompts; 500 and 5,000 files
    python bench/bench_load.py --quick    # 20 and 100 prompts; 100 and 500 files
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from _common import report

from maa.testing import bursts, chirp, noise, tiny_bundle, tone

MAA = [sys.executable, "-m", "maa.cli.app"]
WORDS = ["rain", "a dog barking", "thunder", "footsteps on gravel", "a car engine", "birdsong",
         "a door slams", "wind", "a crowd cheering", "church bells"]  # fmt: skip


def run(cmd: list[str], stop_when: tuple[Path, str, int] | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; return (seconds, peak RSS MiB of the process tree, output). With
    ``stop_when=(folder, pattern, n)`` the process is killed once ``n`` files match."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    t0, peak = time.perf_counter(), 0.0
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [ps, *ps.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree) / 2**20)
        except psutil.Error:
            pass
        if stop_when and len(list(stop_when[0].glob(stop_when[1]))) >= stop_when[2]:
            proc.send_signal(signal.SIGKILL)
        time.sleep(0.1)
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if proc.returncode not in (0, -signal.SIGKILL):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return time.perf_counter() - t0, peak, out


def generation(work: Path, sizes: list[int]) -> list[dict]:
    bundle = tiny_bundle(work / "bundle", with_clap=False)
    rows = []
    for n in sizes:
        prompts = work / f"prompts{n}.txt"
        prompts.write_text("\n".join(f"{WORDS[i % len(WORDS)]}, take {i}" for i in range(n)))
        out = work / f"gen{n}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [*MAA, "generate", "--prompts", str(prompts), "--out-dir", str(out),
               "--bundle", str(bundle), "--duration", "1", "--steps", "1", "--seed", "0",
               "--device", "cpu"]  # fmt: skip
        secs, peak, _ = run(cmd)
        rows.append({"job": f"generate {n} prompts", "seconds": secs, "peak RSS MiB": peak})
    # interrupt the largest run at 30 % and resume it
    n = sizes[-1]
    out = work / f"gen{n}-resumed"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*MAA, "generate", "--prompts", str(work / f"prompts{n}.txt"), "--out-dir", str(out),
           "--bundle", str(bundle), "--duration", "1", "--steps", "1", "--seed", "0",
           "--device", "cpu"]  # fmt: skip
    secs1, _, _ = run(cmd, stop_when=(out, "*.wav", int(0.3 * n)))
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")}
    secs2, peak, log = run(cmd)
    redone = sum(1 for name, t in before.items() if (out / name).stat().st_mtime_ns != t)
    kept = next((ln for ln in log.splitlines() if ln.startswith("resuming")), "no resume line")
    rows.append({"job": f"generate {n}, killed after {len(before)} files, then resumed",
                 "seconds": secs1 + secs2, "peak RSS MiB": peak,
                 "note": f"{kept}; finished files redone: {redone}"})  # fmt: skip
    return rows


def clip(i: int, sr: int = 16000):
    """The ``i``-th of many different one-second synthetic clips."""
    kind, k = i % 4, i // 4
    if kind == 0:
        return tone(110 + (37 * k) % 3000, 1.0, sr, harmonics=1 + k % 4)
    if kind == 1:
        return noise(1.0, sr, seed=k, lowpass=bool(k % 2))
    if kind == 2:
        return chirp(100 + (13 * k) % 800, 1000 + (71 * k) % 6000, 1.0, sr)
    return bursts(1.0, sr, rate_hz=2 + k % 6, seed=k)


def evaluate_cmd(gen: Path, ref: Path, clap: Path, out: Path, cache: Path) -> list[str]:
    # FD on the shipped CLAP's audio embeddings: synthetic clips carry no captions to score
    return [*MAA, "evaluate", "-g", str(gen), "-r", str(ref), "--metrics", "fd",
            "--embedder", f"clap:{clap}", "-o", str(out), "--cache-dir", str(cache),
            "--device", "cpu"]  # fmt: skip


def evaluation(work: Path, sizes: list[int]) -> list[dict]:
    import soundfile as sf

    clap = Path(__file__).resolve().parent.parent / "maa" / "assets" / "clap"
    ref = work / "eval_ref"
    shutil.rmtree(ref, ignore_errors=True)
    ref.mkdir(parents=True)
    for i in range(100):
        sf.write(ref / f"ref{i:03d}.wav", clip(i + 10**6).numpy(), 16000)
    rows = []
    for n in sizes:
        gen = work / f"eval{n}"
        if not gen.is_dir() or len(list(gen.glob("*.wav"))) != n:
            shutil.rmtree(gen, ignore_errors=True)
            gen.mkdir(parents=True)
            for k in range(n):
                sf.write(gen / f"g{k:05d}.wav", clip(k).numpy(), 16000)
        cache = work / f"cache{n}"
        shutil.rmtree(cache, ignore_errors=True)
        secs, peak, _ = run(evaluate_cmd(gen, ref, clap, work / f"report{n}.json", cache))
        rows.append({"job": f"evaluate {n} files", "seconds": secs, "peak RSS MiB": peak})
    # interrupted and resumed: the feature cache keeps what was embedded
    n = sizes[-1]
    cache = work / f"cache{n}-resumed"
    shutil.rmtree(cache, ignore_errors=True)
    cmd = evaluate_cmd(work / f"eval{n}", ref, clap, work / f"report{n}-resumed.json", cache)
    secs_full = next(r["seconds"] for r in rows if r["job"] == f"evaluate {n} files")
    secs1, _, _ = run(cmd, stop_when=(cache, "**/*.npz", n // 2))  # half the clips embedded
    cached = len(list(cache.glob("**/*.npz")))
    secs2, peak, _ = run(cmd)
    note = (f"killed with {cached} of {n} clips' features cached; resumed run {secs2:.1f} s "
            f"vs {secs_full:.1f} s from scratch")  # fmt: skip
    rows.append({"job": f"evaluate {n}, killed, then resumed", "seconds": secs1 + secs2,
                 "peak RSS MiB": peak, "note": note})  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--work", type=Path, default=Path("runs/bench-load"))
    p.add_argument("--skip-generate", action="store_true")
    p.add_argument("--skip-evaluate", action="store_true")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    if not args.skip_generate:
        rows += generation(args.work, [20, 100] if args.quick else [100, 1000])
    if not args.skip_evaluate:
        rows += evaluation(args.work, [100, 500] if args.quick else [500, 5000])
    name = "load" + (
        "_evaluate" if args.skip_generate else "_generate" if args.skip_evaluate else ""
    )
    report(name, rows, "peak RSS: the maa process tree, sampled every 0.1 s")


if __name__ == "__main__":
    main()
