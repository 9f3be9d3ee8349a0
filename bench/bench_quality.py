"""Quality of a text-to-audio bundle on a corpus's held-out test split (MODEL_CARD.md's table).

For each evaluated category (at least ``--min-test`` test clips and ``--min-train`` train clips)
one caption — the most common caption of its test clips — is generated ``--per-caption`` times
(5 s, the default sampler). With the CLAP (the shipped one unless ``--clap``):

* ``clap_score`` — mean cosine between a clip and its category caption, for the generated clips
  and, as the reference, for the real test clips of the same categories;
* ``accuracy`` — zero-shot category accuracy: each category is described by the mean CLAP text
  embedding of its generated caption and the training captions the bundle records for it
  (prompt ensembling, as in zero-shot CLIP); a clip counts as right when its own category's
  description is the closest (chance = 1 / categories);
* ``fd_matched`` / ``fd_shuffled`` — category-conditional Fréchet distance of CLAP audio
  embeddings: the mean over categories of FD(clips generated for c, real test clips of c), and
  the same with each category's generated clips replaced by those of another category (a fixed
  derangement). Over the whole set the two would be identical (the same clips), so the
  comparison has to be made per category: it says whether the caption steers the audio;
* ``evaluate`` — ``maa evaluate`` (FD on CLAP embeddings and the CLAP score; KL and IS need the
  PANNs checkpoint, which is not shipped) of all generated clips against the real test clips of
  those categories.

    python bench/bench_quality.py [--corpus corpus] [--bundle DIR] [--clap DIR] [--quick]
                                  [--guidance G ...] [--classes-from DIR]

``--classes-from BUNDLE`` describes the categories by that bundle's recorded captions instead, so
that bundles trained differently (e.g. without captions) are scored against the same classes.

``--prompt`` (default: "a dog barking in rain", "a dog barking", "rain falling") are generated
too, each ``--per-caption`` times, and each clip is counted under its nearest category
(``quality_prompt.json``; issue 20's targets: dog ≥ 5/10 for "a dog barking", rain ≥ 5/10 for
"rain falling"). Several ``--guidance`` values run
one sweep (the same seeds per value); each writes ``quality_g<G>.json`` etc., except the
generator's default, which writes ``quality.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import report
from maa.audio import load_audio, write_audio
from maa.bundle import Bundle
from maa.clap import default_clap, load_clap
from maa.generate import DEFAULT_GUIDANCE, Generator, bundle_categories
from maa.manifest import audio_paths, read_manifest, write_manifest
from maa.metrics import frechet_distance_features
from maa.system import ASSETS


def pick_categories(df: pd.DataFrame, min_test: int, min_train: int) -> dict[str, str]:
    """Category → caption (its test clips' most common caption) for well-represented ones."""
    test, train = df[df["split"] == "test"], df[df["split"] == "train"]
    n_test, n_train = test["category"].value_counts(), train["category"].value_counts()
    cats = [c for c in n_test.index if n_test[c] >= min_test and n_train.get(c, 0) >= min_train]
    return {c: test.loc[test["category"] == c, "caption"].value_counts().index[0] for c in cats}


def class_embedding(clap, caption: str, info: dict) -> np.ndarray:
    """Unit mean of the CLAP text embeddings of ``caption`` and the category's recorded captions."""
    texts = list(dict.fromkeys([caption, *info.get("captions", [])]))
    mean = clap.embed_text(texts).float().numpy().mean(axis=0)
    return mean / np.linalg.norm(mean)


def derangement(n: int, seed: int = 0) -> list[int]:
    """A seeded permutation of ``range(n)`` with no fixed point."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if n < 2 or not (perm == np.arange(n)).any():
            return perm.tolist()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=Path("corpus"), help="`make corpus` output")
    p.add_argument("--bundle", type=Path, default=ASSETS / "default_bundle")
    p.add_argument("--clap", type=Path, default=None, help="CLAP bundle (default: shipped)")
    p.add_argument("--per-caption", type=int, default=10)
    p.add_argument("--min-test", type=int, default=2)
    p.add_argument("--min-train", type=int, default=10)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--work", type=Path, default=Path("runs/bench-quality"))
    p.add_argument("--quick", action="store_true", help="2 clips per caption")
    p.add_argument("--guidance", type=float, nargs="+", default=[DEFAULT_GUIDANCE],
                   help="classifier-free guidance scale(s) to measure")  # fmt: skip
    p.add_argument("--name", default="quality", help="result file prefix (bench/results/)")
    p.add_argument("--classes-from", type=Path, default=None,
                   help="bundle whose recorded training captions describe the categories for "
                        "`accuracy` (default: --bundle); one bundle for all compared")  # fmt: skip
    p.add_argument("--prompt", nargs="*",
                   default=["a dog barking in rain", "a dog barking", "rain falling"],
                   help="also generate it; count each clip's nearest category")  # fmt: skip
    args = p.parse_args()
    per = 2 if args.quick else args.per_caption
    t0 = time.perf_counter()
    if not (args.corpus / "manifest.parquet").is_file():
        print(f"skipped: no corpus at {args.corpus} (run `make corpus` or pass --corpus DIR)")
        return

    df = read_manifest(args.corpus / "manifest.parquet")
    captions = pick_categories(df, args.min_test, args.min_train)
    order = sorted(captions)
    print(f"{len(order)} categories, {per} clips each: {', '.join(order)}")
    gen = Generator.from_bundle(args.bundle, device="cpu")
    clap_path = args.clap or default_clap()
    clap = load_clap(clap_path)
    sr = int(gen.vocoder.sample_rate)

    test = df[(df["split"] == "test") & df["category"].isin(order)].reset_index(drop=True)
    test.attrs = df.attrs
    real_audio: dict[str, list[torch.Tensor]] = {c: [] for c in order}
    for path, c in zip(audio_paths(test), test["category"], strict=True):
        real_audio[c].append(load_audio(path, sr)[0])
    ref = test.copy()
    ref["audio_path"] = [str(x) for x in audio_paths(test)]
    args.work.mkdir(parents=True, exist_ok=True)
    write_manifest(ref, args.work / "real_test.parquet")

    known = gen.categories if args.classes_from is None else (
        bundle_categories(Bundle.open(args.classes_from)))  # fmt: skip
    with torch.no_grad():
        text = clap.embed_text([captions[c] for c in order]).float().numpy()
        classes = np.stack([class_embedding(clap, captions[c], known.get(c, {})) for c in order])
        real_emb = {c: clap.embed_audio(real_audio[c], sr).float().numpy() for c in order}
    scorer = Scorer(order, text, classes, real_emb)
    r_per = scorer.per_category(real_emb)
    r_score, r_acc = totals(r_per)
    for guidance in args.guidance:
        suffix = "" if guidance == DEFAULT_GUIDANCE else f"_g{guidance:g}"
        work = args.work / f"generated{suffix}"
        gen_emb = generate_set(gen, clap, captions, order, per, args.duration, guidance, work)
        ev = run_evaluate(work / "generated.parquet", args.work / "real_test.parquet", clap_path)
        g_per = scorer.per_category(gen_emb)
        g_score, g_acc = totals(g_per)
        fd_m = scorer.conditional_fd(gen_emb, list(range(len(order))))
        fd_s = scorer.conditional_fd(gen_emb, derangement(len(order)))
        rows_out = [
            {"set": "generated", "clips": sum(map(len, gen_emb.values())), "clap_score": g_score,
             "accuracy": g_acc, "fd_matched": fd_m, "fd_shuffled": fd_s},
            {"set": "real test", "clips": sum(map(len, real_emb.values())), "clap_score": r_score,
             "accuracy": r_acc},
            {"set": "maa evaluate (all generated vs real test)", **ev},
        ]  # fmt: skip
        notes = (
            f"{len(order)} categories (chance {1 / len(order):.3f}), {per} clips per caption, "
            f"{args.duration:g} s, guidance {guidance:g}, bundle {args.bundle}, CLAP {clap_path}; "
            f"fd_shuffled/fd_matched = {fd_s / fd_m:.2f}; total {time.perf_counter() - t0:.0f} s"
        )
        report(f"{args.name}{suffix}", rows_out, notes)
        cat_rows = [
            {"category": c, "caption": captions[c], "gen_clap": g_per[c][0] / g_per[c][2],
             "gen_accuracy": g_per[c][1] / g_per[c][2], "real_clap": r_per[c][0] / r_per[c][2],
             "real_accuracy": r_per[c][1] / r_per[c][2], "real_clips": r_per[c][2]}
            for c in order
        ]  # fmt: skip
        report(f"{args.name}_categories{suffix}", cat_rows,
               f"per category, {per} generated clips each, guidance {guidance:g}")  # fmt: skip
        prompt_rows = []
        for k, prompt in enumerate(args.prompt):
            emb = generate_set(
                gen,
                clap,
                {"prompt": prompt},
                ["prompt"],
                per,
                args.duration,
                guidance,
                work / f"prompt{k}",
                seed=10_000 * (k + 1),
            )["prompt"]
            nearest = Counter(order[i] for i in (emb @ classes.T).argmax(axis=1))
            prompt_rows += [{"prompt": prompt, "nearest category": c, "clips": n}
                            for c, n in nearest.most_common()]  # fmt: skip
        if prompt_rows:
            report(f"{args.name}_prompt{suffix}", prompt_rows,
                   f"nearest of the {len(order)} categories by the CLAP, {per} clips")  # fmt: skip


class Scorer:
    """CLAP-embedding scores of generated clips against the categories' captions and test clips."""

    def __init__(self, order: list[str], text: np.ndarray, classes: np.ndarray,
                 real_emb: dict[str, np.ndarray]) -> None:  # fmt: skip
        self.order, self.text, self.classes, self.real_emb = order, text, classes, real_emb

    def per_category(self, emb: dict[str, np.ndarray]) -> dict[str, tuple[float, int, int]]:
        """Category → (summed caption cosine, clips classified right, clips)."""
        out = {}
        for i, c in enumerate(self.order):
            right = int(((emb[c] @ self.classes.T).argmax(axis=1) == i).sum())
            out[c] = (float((emb[c] @ self.text[i]).sum()), right, len(emb[c]))
        return out

    def conditional_fd(self, gen_emb: dict[str, np.ndarray], perm: list[int]) -> float:
        """Mean over categories ``c`` of FD(generated of ``order[perm[i]]``, real of ``c``)."""
        order = self.order
        fds = [
            frechet_distance_features(gen_emb[order[perm[i]]], self.real_emb[c], method="svd")
            for i, c in enumerate(order)
        ]
        return float(np.mean(fds))


def totals(per: dict[str, tuple[float, int, int]]) -> tuple[float, float]:
    """(mean caption cosine, accuracy) over all clips of ``Scorer.per_category``'s result."""
    n = sum(v[2] for v in per.values())
    return sum(v[0] for v in per.values()) / n, sum(v[1] for v in per.values()) / n


def generate_set(gen: Generator, clap, captions: dict[str, str], order: list[str], per: int,
                 duration: float, guidance: float, out: Path,
                 seed: int = 0) -> dict[str, np.ndarray]:  # fmt: skip
    """Generate ``per`` clips per category into ``out`` (+ generated.parquet); CLAP embeddings."""
    out.mkdir(parents=True, exist_ok=True)
    sr = int(gen.vocoder.sample_rate)
    rows, emb = [], {}
    t0 = time.perf_counter()
    for k, c in enumerate(order):
        clips = gen.generate([captions[c]] * per, duration=duration, seed=seed + 1000 * k,
                             batch_size=per, guidance=guidance)  # fmt: skip
        for j, clip in enumerate(clips):
            name = f"{c.replace(' ', '_')}_{j:02d}.wav"
            write_audio(out / name, clip.wave, sr)
            rows.append({"audio_path": name, "caption": captions[c], "duration": duration,
                         "sample_rate": sr, "source": "maa generate", "split": "test",
                         "category": c})  # fmt: skip
        with torch.no_grad():
            emb[c] = clap.embed_audio([clip.wave for clip in clips], sr).float().numpy()
        print(f"  {c}: generated, guidance {guidance:g} ({time.perf_counter() - t0:.0f} s)")
    write_manifest(pd.DataFrame(rows), out / "generated.parquet")
    return emb


def run_evaluate(generated: Path, real: Path, clap_path: Path) -> dict[str, float]:
    """``maa evaluate`` (FD on CLAP embeddings, CLAP score) of ``generated`` against ``real``."""
    ev_path = generated.parent / "evaluate.json"
    subprocess.run(
        [str(Path(sys.executable).parent / "maa"), "evaluate", "-g", str(generated),
         "-r", str(real), "--metrics", "fd,clap", "--embedder", f"clap:{clap_path}",
         "--clap", str(clap_path), "-o", str(ev_path)],
        check=True,
    )  # fmt: skip
    ev = json.loads(ev_path.read_text())
    return {f"evaluate_{m['metric']}_{m['backbone']}": m["value"] for m in ev["metrics"]}


if __name__ == "__main__":
    main()
