"""``maa manifest scan|import|info``."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console, handle_errors

manifest_app = typer.Typer(help="Build and inspect Parquet manifests.", no_args_is_help=True)


def _write(df, failures, out: Path) -> None:
    from maa.errors import MaaError
    from maa.manifest import write_manifest, write_side_table

    if df.empty:
        reasons = "; ".join(failures["error"].head(3)) if len(failures) else "no rows"
        raise MaaError(f"no usable audio: {reasons}")
    write_manifest(df, out)
    console.print(f"wrote [bold]{out}[/] ({len(df)} clips, {df['duration'].sum() / 3600:.2f} h)")
    if side := write_side_table(failures, out, "failures"):
        console.print(f"[yellow]{len(failures)} file(s) skipped[/], reasons in {side}:")
        for _, r in failures.head(10).iterrows():
            console.print(f"  {r['audio_path']}: {r['error']}", highlight=False)


@manifest_app.command("scan")
@handle_errors
def scan_cmd(
    audio_dir: Path = typer.Argument(..., help="Folder of audio files (searched recursively)."),
    out: Path = typer.Option(..., "-o", "--out", help="Manifest to write (.parquet)."),
    source: str = typer.Option(None, help="Value of the `source` column (default: folder name)."),
    valid_fraction: float = typer.Option(0.0, help="Fraction of files put in the valid split."),
    test_fraction: float = typer.Option(0.0, help="Fraction of files put in the test split."),
) -> None:
    """Build a manifest from a folder of audio (durations, sample rates, sidecar captions)."""
    from maa.stages.manifest_ops import scan

    _write(*scan(audio_dir, out.parent, source, valid_fraction, test_fraction), out)


@manifest_app.command("import")
@handle_errors
def import_cmd(
    path: Path = typer.Argument(
        ..., help="Make-An-Audio .tsv, AudioCaps .csv or audiocraft .jsonl"
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Manifest to write (.parquet)."),
    audio_dir: Path = typer.Option(
        None, help="Folder with the audio (AudioCaps ids, relative paths)."
    ),
    split: str = typer.Option("train", help="Split of every imported row."),
    source: str = typer.Option(None, help="Value of the `source` column."),
) -> None:
    """Import another toolkit's file list as a manifest (headers checked, missing files listed)."""
    from maa.stages.manifest_ops import import_file

    _write(*import_file(path, out.parent, audio_dir, split, source), out)


@manifest_app.command("info")
@handle_errors
def info_cmd(path: Path = typer.Argument(..., help="Manifest (.parquet).")) -> None:
    """Counts, total hours and caption statistics of a manifest."""
    from rich.table import Table

    from maa.manifest import read_manifest
    from maa.stages.manifest_ops import summarize

    s = summarize(read_manifest(path))
    table = Table(title=str(path), show_header=False)
    table.add_row("clips", str(s["clips"]))
    table.add_row("hours", f"{s['hours']:.3f}")
    d = s["duration_s"]
    table.add_row(
        "duration (s)", f"min {d['min']:.2f} · median {d['median']:.2f} · max {d['max']:.2f}"
    )
    table.add_row("splits", ", ".join(f"{k} {v}" for k, v in s["splits"].items()))
    table.add_row("sources", ", ".join(f"{k} {v}" for k, v in s["sources"].items()))
    table.add_row("sample rates", ", ".join(f"{k} Hz × {v}" for k, v in s["sample_rates"].items()))
    table.add_row("captioned", f"{s['captioned']} ({s['unique_captions']} unique)")
    table.add_row("words / caption", f"{s['words_per_caption']:.1f}")
    table.add_row("extra columns", ", ".join(s["extra_columns"]) or "-")
    console.print(table)
