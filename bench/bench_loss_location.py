"""Where quality is lost: real held-out clips through each stage of the pipeline (issue 20).

For the categories of ``bench_quality.py`` (at least 2 test and 10 train clips), every real test
clip is scored as

* ``original`` — the recording itself;
* ``vocoder`` — its log-mel resynthesised by the bundle's vocoder (the ceiling of any model that
  decodes mels with that vocoder);
* ``vae:NAME`` — its log-mel encoded and decoded by a VAE (posterior mode), then vocoded: the
  ceiling of any U-Net working in that VAE's latent space (one row per ``--vae`` bundle);
* ``generated`` — with ``--generated MANIFEST``, clips a bundle generated for the categories'
  captions (``bench_quality.py`` writes ``runs/bench-quality/generated/generated.parquet``).

Each set gets the CLAP's zero-shot category accuracy (bench_quality's protocol: prompt-ensembled
category descriptions), the CLAP score against the category caption, and, where paired with the
original, the mean log-mel L1 (natural-log mel of the bundle's preset). One PNG per category shows
the first test clip through each stage.

    python bench/bench_loss_location.py [--corpus corpus] [--vae DIR ...] [--generated MANIFEST]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import report
from bench.bench_quality import Scorer, class_embedding, pick_categories, totals
from maa.audio import load_audio
from maa.bundle import Bundle
from maa.clap import default_clap, load_clap
from maa.generate import bundle_categories, save_spectrogram_png
from maa.manifest import audio_paths, read_manifest
from maa.mel import MelSpectrogram
from maa.models.vae import load_vae
from maa.stages.vae import reconstruct_mel
from maa.system import ASSETS
from maa.vocoder import resolve_vocoder_for

MAX_SECONDS = 10.0  # longer test clips are scored on their first 10 s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=Path("corpus"), help="`make corpus` output")
    p.add_argument("--bundle", type=Path, default=ASSETS / "default_bundle",
                   help="bundle whose mel preset, vocoder and categories are used")  # fmt: skip
    p.add_argument("--vae", type=Path, nargs="*", default=None,
                   help="VAE bundles to round-trip through (default: --bundle's)")  # fmt: skip
    p.add_argument("--generated", type=Path, default=None, help="generated clips' manifest")
    p.add_argument("--clap", type=Path, default=None, help="CLAP bundle (default: shipped)")
    p.add_argument("--out", type=Path, default=Path("runs/bench-loss-location"))
    p.add_argument("--name", default="loss_location", help="result file name")
    args = p.parse_args()
    t0 = time.perf_counter()
    if not (args.corpus / "manifest.parquet").is_file():
        print(f"skipped: no corpus at {args.corpus} (run `make corpus` or pass --corpus DIR)")
        return
    torch.set_grad_enabled(False)
    df = read_manifest(args.corpus / "manifest.parquet")
    captions = pick_categories(df, 2, 10)
    order = sorted(captions)
    bundle = Bundle.open(args.bundle)
    mel_p = bundle.mel
    sr = mel_p.sample_rate
    melspec = MelSpectrogram(mel_p)
    vocoder = resolve_vocoder_for(bundle, device="cpu")
    clap_path = args.clap or default_clap()
    clap = load_clap(clap_path)

    test = df[(df["split"] == "test") & df["category"].isin(order)].reset_index(drop=True)
    test.attrs = df.attrs
    waves: dict[str, list[torch.Tensor]] = {c: [] for c in order}
    for path, c in zip(audio_paths(test), test["category"], strict=True):
        waves[c].append(load_audio(path, sr)[0][: int(MAX_SECONDS * sr)])
    mels = {c: [melspec(w.unsqueeze(0))[0] for w in waves[c]] for c in order}

    known = bundle_categories(bundle)
    text = clap.embed_text([captions[c] for c in order]).float().numpy()
    classes = np.stack([class_embedding(clap, captions[c], known.get(c, {})) for c in order])
    real_emb = {c: clap.embed_audio(waves[c], sr).float().numpy() for c in order}
    scorer = Scorer(order, text, classes, real_emb)

    def score(name: str, audio: dict[str, list[torch.Tensor]], l1: list[float] | None) -> dict:
        emb = {c: clap.embed_audio(audio[c], sr).float().numpy() for c in order}
        per = scorer.per_category(emb)
        cos, acc = totals(per)
        row = {"set": name, "clips": sum(len(v) for v in audio.values()), "clap_score": cos,
               "accuracy": acc, "logmel_l1": float(np.mean(l1)) if l1 else None}  # fmt: skip
        row["per_category"] = {c: per[c][1] / per[c][2] for c in order}
        print(f"  {name}: accuracy {acc:.3f} ({time.perf_counter() - t0:.0f} s)")
        return row

    def vocode(logmels: list[torch.Tensor], n: int) -> torch.Tensor:
        return vocoder(logmels.unsqueeze(0))[0, :n].float()

    rows = [score("original", waves, None)]
    stages: dict[str, dict[str, list[torch.Tensor]]] = {"original": mels}
    voc_audio = {c: [vocode(m, w.numel()) for m, w in zip(mels[c], waves[c], strict=True)]
                 for c in order}  # fmt: skip
    l1 = [float((melspec(a.unsqueeze(0))[0, :, : m.shape[-1]] - m).abs().mean())
          for c in order for a, m in zip(voc_audio[c], mels[c], strict=True)]  # fmt: skip
    rows.append(score("vocoder", voc_audio, l1))
    for vae_dir in args.vae if args.vae is not None else [args.bundle]:
        vae = load_vae(Bundle.open(vae_dir))
        recon = {c: [reconstruct_mel(vae, m.unsqueeze(0), mel_p)[0] for m in mels[c]]
                 for c in order}  # fmt: skip
        l1 = [float((r - m).abs().mean()) for c in order
              for r, m in zip(recon[c], mels[c], strict=True)]  # fmt: skip
        audio = {c: [vocode(r, w.numel()) for r, w in zip(recon[c], waves[c], strict=True)]
                 for c in order}  # fmt: skip
        name = f"vae:{vae_dir.name}" if vae_dir != args.bundle else "vae (bundle)"
        rows.append(score(name, audio, l1))
        stages[name] = recon
    if args.generated is not None:
        gdf = read_manifest(args.generated)
        gen = {c: [load_audio(pth, sr)[0] for pth, cat in
                   zip(audio_paths(gdf), gdf["category"], strict=True) if cat == c]
               for c in order}  # fmt: skip
        rows.append(score("generated", gen, None))
        stages["generated"] = {c: [melspec(g[0].unsqueeze(0))[0]] for c, g in gen.items() if g}

    args.out.mkdir(parents=True, exist_ok=True)
    for c in order:
        shown = [(n, s[c][0]) for n, s in stages.items() if s.get(c)]
        width = min(m.shape[-1] for _, m in shown)
        save_spectrogram_png(
            args.out / f"{c.replace(' ', '_')}.png",
            [m[:, :width] for _, m in shown],
            mel_p,
            [n for n, _ in shown],
        )
    table = [{k: v for k, v in r.items() if k != "per_category"} for r in rows]
    report(
        args.name,
        table,
        f"{len(order)} categories (chance {1 / len(order):.3f}), CLAP {clap_path}; "
        f"vocoder {vocoder!r}; pictures in {args.out}; {time.perf_counter() - t0:.0f} s",
    )
    per_cat = [{"category": c, **{r["set"]: r["per_category"][c] for r in rows}} for c in order]
    report(f"{args.name}_categories", per_cat, "accuracy per category and stage")


if __name__ == "__main__":
    main()
