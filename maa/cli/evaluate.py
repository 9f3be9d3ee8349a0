"""``maa evaluate``: FD, FAD, KL, IS and CLAP score of generated audio against a reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from maa.cli.common import console


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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from maa.stages.evaluate import evaluate, side_file

    with Progress(
        TextColumn("embedding {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        report = evaluate(
            generated,
            reference,
            metrics=metrics,
            embedder=embedder,
            vggish=vggish,
            clap=clap,
            out=out,
            device=device,
            batch_size=batch_size,
            cache_dir=cache_dir,
            use_cache=not no_cache,
            progress=progress,
        )
    print_report(report)
    console.print(f"wrote [bold]{out}[/] and {side_file(out)}")


def print_report(report: dict[str, Any]) -> None:
    """The report's metrics as a rich table; reasons and notes are listed below it."""
    from rich.table import Table

    g, r = report["generated"], report["reference"]
    table = Table(
        title=f"maa evaluate: {g['n_files']} generated vs {r['n_files']} reference files, "
        f"{report['n_paired']} paired by name"
    )
    for col in ("metric", "value", "backbone", "files gen/ref", "paired"):
        table.add_column(col, no_wrap=True)
    notes: list[str] = []
    for m in report["metrics"]:
        value = m["value"]
        if value is None:
            shown = "[red]not computed[/]"
        elif m["metric"] == "IS":
            shown = f"{value:.5g} ± {m.get('std', 0.0):.2g}"
        else:
            shown = f"{value:.5g}"
        files = f"{m.get('n_generated', '')}/{m.get('n_reference', '')}".strip("/")
        table.add_row(
            m["metric"], shown, m.get("backbone") or "", files, str(m.get("n_paired", ""))
        )
        if m.get("reason"):
            notes.append(f"[red]{m['metric']}[/] {m['reason']}")
        notes += [f"[yellow]{m['metric']}[/] {n}" for n in m.get("notes", [])]
    console.print(table)
    for note in notes + [f"[yellow]note[/] {n}" for n in report.get("notes", [])]:
        console.print(note, highlight=False)
