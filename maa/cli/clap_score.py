"""``maa clap-score``: text–audio agreement and retrieval recall of a manifest's captions."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console


def clap_score_cmd(
    manifest: Path = typer.Option(..., help="Captioned manifest (.parquet) to score."),
    clap: Path = typer.Option(
        None,
        help="A bundle with a clap component (maa train-clap) or a local Hugging Face ClapModel "
        "folder (default: $MAA_CLAP or the shipped CLAP).",
    ),
    split: str = typer.Option(None, help="Score only this split (default: every row)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures to this JSON file."),
) -> None:
    """Text–audio agreement and zero-shot retrieval recall@1/@10 of a manifest's captions."""
    from rich.table import Table

    from maa.clap import default_clap, load_clap
    from maa.device import resolve_device
    from maa.stages.clap import clap_score

    model = load_clap(clap if clap is not None else default_clap(), resolve_device(device))
    r = clap_score(manifest, model, split=split)
    table = Table(title=f"CLAP agreement: {manifest}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("chance", justify="right")
    n_caps = int(r["captions"])
    table.add_row("clips scored", f"{int(r['clips'])}", "")
    table.add_row("distinct captions", f"{n_caps}", "")
    table.add_row("matched cosine", f"{r['matched_cosine']:.4f}", "")
    table.add_row("mismatched cosine", f"{r['mismatched_cosine']:.4f}", "")
    for k in (1, 10):
        table.add_row(f"audio→text R@{k}", f"{r[f'a2t_r{k}']:.3f}", f"{min(1.0, k / n_caps):.3f}")
        table.add_row(f"text→audio R@{k}", f"{r[f't2a_r{k}']:.3f}", "")
    console.print(table)
    if r["skipped"]:
        console.print(f"[yellow]{len(r['skipped'])} row(s) skipped[/]:")
        for _, reason in r["skipped"][:10]:
            console.print(f"  {reason}", highlight=False)
    if json_out is not None:
        from maa.fsutil import write_json_atomic

        write_json_atomic(json_out, {**r, "skipped": [list(x) for x in r["skipped"]]})
        console.print(f"wrote {json_out}")
