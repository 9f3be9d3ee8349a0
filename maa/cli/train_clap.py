"""``maa train-clap``: train the contrastive text–audio model used for reranking and scoring."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import (
    CKPT_EVERY,
    EMA_DECAY,
    PRECISION,
    RESUME,
    SEED,
    TRAIN_DEVICE,
    console,
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
    from maa.stages.clap import train_clap

    cfg = train_config(
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, precision=precision,
        ema=ema, ckpt_every=ckpt_every, val_every=val_every, seed=seed, device=device,
        grad_clip=1.0,
    )  # fmt: skip
    s = train_clap(manifest, out, preset=preset, train_cfg=cfg, resume=resume, lr=lr,
                   tune_text_layers=tune_text_layers)  # fmt: skip
    console.print(f"{s.captions} distinct captions")
    print_summary(s, "clap", out)
