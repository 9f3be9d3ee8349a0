"""Speed of the shipped default bundle: cold start of ``maa generate`` and warm generation.

Rows:

* ``cold`` — ``maa generate "a dog barking in rain" -o out.wav`` (5 s, every default) as a fresh
  process: wall time from start to written file and peak resident memory, read from
  ``/usr/bin/time -v`` where it exists (else from the child's ``getrusage``); best and median of
  ``--repeat`` runs;
* ``warm`` — :meth:`Generator.generate` with the model loaded (the Python API), seconds per 5 s
  clip at the default settings, for 1 and 2 CLAP-reranked candidates, best of ``--repeat``.

    python bench/bench_default.py [--quick] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine, report, timeit
from maa.system import ASSETS

PROMPT = "a dog barking in rain"


def cold_run(maa: str, bundle: Path | None, out: Path) -> tuple[float, float]:
    """One fresh ``maa generate``: (wall seconds, peak RSS MiB)."""
    cmd = [maa, "generate", PROMPT, "-o", str(out), "--seed", "0"]
    if bundle is not None:
        cmd += ["--bundle", str(bundle)]
    if Path("/usr/bin/time").exists():
        t0 = time.perf_counter()
        res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            raise SystemExit(f"maa generate failed:\n{res.stderr}")
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
        return wall, int(rss.group(1)) / 1024 if rss else float("nan")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 repeats instead of 3")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--bundle", type=Path, default=None, help="default: the shipped bundle")
    args = p.parse_args()
    repeat = 2 if args.quick else args.repeat
    bundle = args.bundle or ASSETS / "default_bundle"
    if not (bundle / "bundle.json").is_file():
        print(f"skipped: no bundle at {bundle} (train one with `make default-bundle`)")
        return
    maa = str(Path(sys.executable).parent / "maa")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [cold_run(maa, args.bundle, Path(tmp) / f"cold{i}.wav") for i in range(repeat)]
    walls = [w for w, _ in runs]
    rss = max(r for _, r in runs)
    rows.append({"case": "cold: maa generate (5 s clip)", "best_s": min(walls),
                 "median_s": statistics.median(walls), "peak_rss_mb": rss})  # fmt: skip

    from maa.generate import Generator

    gen = Generator.from_bundle(bundle, device="cpu")
    for cands in (1, 2):
        best = timeit(lambda c=cands: gen.generate(PROMPT, duration=5.0, seed=0, candidates=c),
                      repeat=repeat)  # fmt: skip
        rows.append({"case": f"warm: Generator.generate, {cands} candidate(s)", "best_s": best})
    notes = (
        f"5 s clips, default sampler/steps/guidance, bundle {bundle}, "
        f"{machine().get('gpu', machine()['cpu'])}, {os.cpu_count()} CPU(s)"
    )
    report("default", rows, notes)


if __name__ == "__main__":
    main()
