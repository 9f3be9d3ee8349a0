"""``maa train-vae``: the KL spectrogram autoencoder with the multi-window discriminator."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import (
    CKPT_EVERY,
    EMA_DECAY,
    GRAD_ACCUM,
    PRECISION,
    RESUME,
    SEED,
    TRAIN_DEVICE,
    print_summary,
    train_config,
)


def train_vae_cmd(
    manifest: Path = typer.Option(..., help="Training manifest (.parquet); uses its train split."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write (created if new)."),
    preset: str = typer.Option("tiny", help="Model size: tiny, default or paper."),
    max_steps: int = typer.Option(1000, help="Total optimiser steps."),
    batch_size: int = typer.Option(16, help="Clips per step (per GPU)."),
    grad_accum: int = GRAD_ACCUM,
    crop_frames: int = typer.Option(None, help="Training crop in mel frames (multiple of 8)."),
    lr: float = typer.Option(None, help="Learning rate (default: the preset's)."),
    disc_start: int = typer.Option(None, help="Step at which the discriminator switches on."),
    precision: str = PRECISION,
    ema: float = EMA_DECAY,
    ckpt_every: int = CKPT_EVERY,
    val_every: int = typer.Option(0, help="Validate on the valid split every N steps (0: off)."),
    seed: int = SEED,
    device: str = TRAIN_DEVICE,
    resume: bool = RESUME,
) -> None:
    """Train the KL spectrogram autoencoder with the multi-window discriminator."""
    from maa.stages.vae import train_vae

    cfg = train_config(
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, precision=precision,
        ema=ema, ckpt_every=ckpt_every, val_every=val_every, seed=seed, device=device,
    )  # fmt: skip
    summary = train_vae(manifest, out, preset=preset, train_cfg=cfg, resume=resume,
                        crop_frames=crop_frames, lr=lr, disc_start=disc_start)  # fmt: skip
    print_summary(summary, "vae", out)
