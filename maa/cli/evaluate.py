"""``maa evaluate``: FD, FAD, KL, IS and CLAP score of generated audio against a reference."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from maa.cli.common import console

if TYPE_CHECKING:
    from maa.stages.evaluate import EvalReport


def evaluate_cmd(
    generated: Path = typer.Option(
        ..., "--generated", "-g", help="Generated audio: a folder or a .parquet manifest."
    ),
    reference: Path = typer.Option(
        ..., "--reference", "-r", help="Reference audio: a folder or a .parquet manifest."
    ),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Report to write (.json); per-file scores go beside it."
    ),
    metrics: str = typer.Option(
        None,
        help="Comma-separated subset of fd,fad,kl,is,clap (default: every metric whose model "
        "was given; the others are listed as skipped).",
    ),
    embedder: str = typer.Option(
        None,
        help="Backbone of FD/KL/IS: panns:PATH (the official Cnn14_16k_mAP=0.438.pth) or "
        "clap:PATH|BUNDLE (FD on CLAP audio embeddings; KL and IS need PANNs).",
    ),
    vggish: Path = typer.Option(None, help="torchvggish vggish-10086976.pth, for FAD."),
    clap: str = typer.Option(
        None, help="CLAP for the CLAP score: a `maa train-clap` bundle or a HF ClapModel folder."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    batch_size: int = typer.Option(8, help="Clips per forward pass."),
    cache_dir: Path = typer.Option(
        None, help="Feature cache folder (default ~/.cache/maa/eval-features or $MAA_CACHE_DIR)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
) -> None:
    """Score generated audio against a reference set (audioldm_eval-compatible formulas).

    KL pairs files by name; the CLAP score takes captions from the generated manifest, or
    from the name-paired reference clips. Every number names the backbone it came from.
    """
    from maa.stages.evaluate import evaluate

    report = evaluate(
        generated, reference, metrics=metrics, embedder=embedder, vggish=vggish, clap=clap,
        out=out, device=device, batch_size=batch_size, cache_dir=cache_dir,
        use_cache=not no_cache, progress=True,
    )  # fmt: skip
    print_report(report)
    console.print(f"wrote [bold]{out}[/] and {out.with_name(report.per_file)}")


def print_report(report: EvalReport) -> None:
    """The report's metrics as a rich table; reasons and notes are listed below it."""
    from rich.table import Table

    table = Table(
        title=f"maa evaluate: {report.generated.n_files} generated vs "
        f"{report.reference.n_files} reference files, {report.n_paired} paired by name"
    )
    for col in ("metric", "value", "backbone", "files gen/ref", "paired"):
        table.add_column(col, no_wrap=True)
    notes: list[str] = []
    for m in report.metrics:
        if m.value is None:
            shown = "[red]not computed[/]"
        elif m.std is not None:
            shown = f"{m.value:.5g} ± {m.std:.2g}"
        else:
            shown = f"{m.value:.5g}"
        files = "/".join(str(n) for n in (m.n_generated, m.n_reference) if n is not None)
        paired = "" if m.n_paired is None else str(m.n_paired)
        table.add_row(m.metric, shown, m.backbone or "", files, paired)
        if m.reason:
            notes.append(f"[red]{m.metric}[/] {m.reason}")
        notes += [f"[yellow]{m.metric}[/] {n}" for n in m.notes]
    console.print(table)
    for note in notes + [f"[yellow]note[/] {n}" for n in report.notes]:
        console.print(note, highlight=False)
