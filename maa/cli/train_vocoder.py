"""``maa train-vocoder``: HiFi-GAN with multi-period and multi-scale discriminators."""

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
    console,
    print_summary,
    train_config,
)


def train_vocoder_cmd(
    manifest: Path = typer.Option(..., help="Training manifest (.parquet); uses its train split."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write (created if new)."),
    preset: str = typer.Option("tiny", help="Generator size: tiny, default (V1) or paper (V1)."),
    mel: str = typer.Option(None, help="Mel preset (default: the preset's; paper is 16 kHz)."),
    init: str = typer.Option(
        None, help="'default': fine-tune from the pretrained universal HiFi-GAN."
    ),
    max_steps: int = typer.Option(1000, help="Total optimiser steps."),
    batch_size: int = typer.Option(16, help="Segments per step (per GPU)."),
    grad_accum: int = GRAD_ACCUM,
    segment_frames: int = typer.Option(None, help="Training segment in mel frames (default 32)."),
    lr: float = typer.Option(None, help="Learning rate (default 2e-4)."),
    precision: str = PRECISION,
    ema: float = EMA_DECAY,
    ckpt_every: int = CKPT_EVERY,
    val_every: int = typer.Option(0, help="Validate on the valid split every N steps (0: off)."),
    seed: int = SEED,
    device: str = TRAIN_DEVICE,
    resume: bool = RESUME,
) -> None:
    """Train or fine-tune HiFi-GAN (generator + multi-period/multi-scale discriminators)."""
    from maa.stages.vocoder import train_vocoder

    cfg = train_config(
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, precision=precision,
        ema=ema, ckpt_every=ckpt_every, val_every=val_every, seed=seed, device=device,
        grad_clip=None,  # HiFi-GAN trains without clipping
    )  # fmt: skip
    s = train_vocoder(manifest, out, preset=preset, train_cfg=cfg, resume=resume, init=init,
                      mel=mel, segment_frames=segment_frames, lr=lr)  # fmt: skip
    print_summary(s, "vocoder", out)
    console.print(
        f"mel preset {s.mel_preset}; try it: maa vocode IN.wav -o OUT.wav --vocoder {out}",
        highlight=False,
    )
