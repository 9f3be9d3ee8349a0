"""``maa corpus build|stats|slice``: the labelled corpus from Debian sound packages."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console, handle_errors

corpus_app = typer.Typer(
    help="Build the real, licensed, labelled corpus from Debian sound packages.",
    no_args_is_help=True,
)


def _table(title: str, counts: dict[str, int], total: int, hours: dict[str, float] | None = None):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("name")
    for col in ("clips", "share", "minutes") if hours is not None else ("clips", "share"):
        table.add_column(col, justify="right")
    for name, n in counts.items():
        cells = [name, str(n), f"{100 * n / max(total, 1):.1f} %"]
        if hours is not None:
            cells.append(f"{60 * hours.get(name, 0.0):.1f}")
        table.add_row(*cells)
    return table


@corpus_app.command("build")
@handle_errors
def build_cmd(
    out: Path = typer.Option(Path("corpus"), "--out", "-o", help="Folder for clips + manifest."),
    packages: str = typer.Option(
        None, help="Comma-separated packages to use (default: every package in the rules)."
    ),
    deb_dir: Path = typer.Option(
        None, help="Folder of NAME_*.deb files or unpacked NAME/ trees (instead of apt-get)."
    ),
    rules: Path = typer.Option(None, help="Rules TSV (default: maa/assets/corpus_rules.tsv)."),
    cache: Path = typer.Option(None, help="Cache for .deb files and unpacked trees (OUT/cache)."),
    seed: int = typer.Option(0, help="Seed for caption choice, subsets and splits."),
    clip_seconds: float = typer.Option(5.0, help="Window length for long recordings (s)."),
    distill_clap: Path = typer.Option(
        None, help="CLAP bundle/folder: pick captions among the rule phrases by CLAP reranking."
    ),
) -> None:
    """Fetch the packages, select and convert their sounds, write OUT/manifest.parquet."""
    from maa.stages.corpus.build import build_corpus

    report = build_corpus(
        out,
        packages=[p.strip() for p in packages.split(",") if p.strip()] if packages else None,
        rules=rules,
        cache=cache,
        seed=seed,
        clip_seconds=clip_seconds,
        deb_dir=deb_dir,
        distill_clap=distill_clap,
        log=lambda msg: console.print(msg, highlight=False, soft_wrap=True),
    )
    console.print(_table("clips per category", report.categories, report.rows))
    console.print(_table("licences", report.licenses, report.rows))
    for name, status in report.packages.items():
        colour = "green" if status.startswith("ok") else "yellow"
        console.print(f"[{colour}]{name}[/]: {status}", highlight=False, soft_wrap=True)
    if report.failures:
        console.print(f"[yellow]{len(report.failures)} recording(s) failed[/]:")
        for key, why in report.failures[:10]:
            console.print(f"  {key}: {why}", highlight=False, soft_wrap=True)
    if report.missing:
        console.print(
            f"[yellow]smaller corpus[/]: {len(report.missing)} package(s) missing "
            f"({', '.join(report.missing)})"
        )
    console.print(
        f"wrote [bold]{report.manifest}[/]: {report.rows} clips, {report.hours:.2f} h, "
        f"{len(report.categories)} categories, splits {report.splits}, "
        f"{report.elapsed:.0f} s"
    )


@corpus_app.command("stats")
@handle_errors
def stats_cmd(
    manifest: Path = typer.Argument(..., help="A corpus manifest (.parquet)."),
) -> None:
    """Per-category clip counts and minutes, licences, sources and splits of a corpus."""
    from maa.errors import ManifestError
    from maa.manifest import read_manifest

    df = read_manifest(manifest)
    for col in ("category", "license"):
        if col not in df.columns:
            raise ManifestError(f"{manifest}: no {col!r} column; is this a `maa corpus` manifest?")
    total = len(df)
    minutes = df.groupby("category")["duration"].sum() / 3600.0
    counts = df["category"].value_counts().to_dict()
    console.print(_table("clips per category", counts, total, minutes.to_dict()))
    for title, col in (("licences", "license"), ("sources", "source"), ("splits", "split")):
        console.print(_table(title, df[col].value_counts().to_dict(), total))
    console.print(
        f"{total} clips, {df['duration'].sum() / 3600:.2f} h, {df['category'].nunique()} categories"
    )


@corpus_app.command("slice")
@handle_errors
def slice_cmd(
    manifest: Path = typer.Argument(..., help="A corpus manifest (.parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the slice."),
    categories: str = typer.Option(..., help="Comma-separated categories, e.g. rain,horse."),
    per_category: int = typer.Option(20, help="Train clips copied per category (at most)."),
    seed: int = typer.Option(0, help="Seed of the train-clip sample."),
) -> None:
    """Copy a balanced slice into OUT/audio/<category>/ (to caption with `maa distill`) and the
    test clips of those categories into OUT/test/ with OUT/test.parquet (to evaluate against)."""
    from maa.stages.corpus.slice import slice_corpus

    cats = [c.strip() for c in categories.split(",") if c.strip()]
    report = slice_corpus(manifest, out, cats, per_category, seed)
    for c in cats:
        console.print(f"{c}: {report.train[c]} train, {report.test[c]} test", highlight=False)
    console.print(
        f"wrote [bold]{out}[/]: audio/ ({sum(report.train.values())} clips), test/ and "
        f"test.parquet ({sum(report.test.values())} clips), sources.parquet"
    )
