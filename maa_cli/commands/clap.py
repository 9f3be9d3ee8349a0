"""``maa train-clap`` and ``maa clap-score``."""

from __future__ import annotations

from pathlib import Path

import typer

from maa_cli.commands import (
    CKPT_EVERY,
    EMA_DECAY,
    PRECISION,
    RESUME,
    SEED,
    TRAIN_DEVICE,
    console,
    handle_errors,
    print_summary,
    train_config,
)


def train_clap_cmd(
    manifest: Path = typer.Option(..., help="Captioned manifest (.parquet); uses its train split."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write (created if new)."),
    preset: str = typer.Option("default", help="Model size: tiny, default or paper."),
    max_steps: int = typer.Option(3000, help="Total optimiser steps."),
    batch_size: int = typer.Option(32, help="Clips per step (per GPU); more negatives help."),
    grad_accum: int = typer.Option(
        1, help="Micro-batches per optimiser step (negatives stay within one micro-batch)."
    ),
    lr: float = typer.Option(None, help="Learning rate (default: the preset's)."),
    tune_text_layers: int = typer.Option(
        None, help="Fine-tune the top N MiniLM layers (default: the preset's; 0 = frozen)."
    ),
    precision: str = PRECISION,
    ema: float = EMA_DECAY,
    ckpt_every: int = CKPT_EVERY,
    val_every: int = typer.Option(250, help="Retrieval recall@1 on the valid split every N steps."),
    seed: int = SEED,
    device: str = TRAIN_DEVICE,
    resume: bool = RESUME,
) -> None:
    """Train a CLAP (audio CNN + MiniLM text tower, symmetric InfoNCE) into a bundle."""
    from stages.clap import train_clap

    cfg = train_config(
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, precision=precision,
        ema=ema, ckpt_every=ckpt_every, val_every=val_every, seed=seed, device=device,
        grad_clip=1.0,
    )  # fmt: skip
    s = train_clap(manifest, out, preset, cfg, resume, lr=lr, tune_text_layers=tune_text_layers)
    console.print(f"{s['captions']} distinct captions")
    print_summary(s, "clap", out)


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

    from maa_cli.clap import default_clap, load_clap
    from maa_cli.device import resolve_device
    from stages.clap import clap_score

    model = load_clap(clap if clap is not None else default_clap(), resolve_device(device))
    r = clap_score(manifest, model, split=split)
    table = Table(title=f"CLAP agreement: {manifest}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("chance", justify="right")
    n_caps = int(r["captions"])
    rows = [
        ("clips scored", f"{int(r['clips'])}", ""),
        ("distinct captions", f"{n_caps}", ""),
        ("matched cosine", f"{r['matched_cosine']:.4f}", ""),
        ("mismatched cosine", f"{r['mismatched_cosine']:.4f}", ""),
    ]
    for k in (1, 10):
        chance = f"{min(1.0, k / n_caps):.3f}"
        rows.append((f"audio→text R@{k}", f"{r[f'a2t_r{k}']:.3f}", chance))
        rows.append((f"text→audio R@{k}", f"{r[f't2a_r{k}']:.3f}", ""))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    _print_skipped(r["skipped"])
    if json_out is not None:
        from maa_cli.fsutil import write_json_atomic

        write_json_atomic(json_out, {**r, "skipped": [list(x) for x in r["skipped"]]})
        console.print(f"wrote {json_out}")


def _print_skipped(skipped: list[tuple[str, str]]) -> None:
    if skipped:
        console.print(f"[yellow]{len(skipped)} row(s) skipped[/]:")
        for _, reason in skipped[:10]:
            console.print(f"  {reason}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train-clap")(handle_errors(train_clap_cmd))
    app.command("clap-score")(handle_errors(clap_score_cmd))
