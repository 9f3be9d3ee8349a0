"""``maa train-vae``: the KL spectrogram autoencoder with the multi-window discriminator."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli import train_options as opt
from maa.cli.common import print_summary, train_config


def train_vae_cmd(
    manifest: Path = opt.MANIFEST,
    out: Path = opt.OUT,
    preset: str = typer.Option("tiny", help="Model size: tiny, default or paper."),
    max_steps: int = opt.MAX_STEPS,
    batch_size: int = opt.BATCH_SIZE,
    grad_accum: int = opt.GRAD_ACCUM,
    crop_frames: int = typer.Option(None, help="Training crop in mel frames (multiple of 8)."),
    lr: float = typer.Option(None, help="Learning rate (default: the preset's)."),
    disc_start: int = typer.Option(None, help="Step at which the discriminator switches on."),
    latent_channels: int = typer.Option(
        None, help="Latent channels (default: the preset's 4; AudioLDM uses 8)."
    ),
    precision: str = opt.PRECISION,
    ema: float = opt.EMA_DECAY,
    ckpt_every: int = opt.CKPT_EVERY,
    val_every: int = opt.VAL_EVERY,
    seed: int = opt.SEED,
    device: str = opt.TRAIN_DEVICE,
    resume: bool = opt.RESUME,
) -> None:
    """Train the KL spectrogram autoencoder with the multi-window discriminator."""
    from maa.stages.vae import train_vae

    cfg = train_config(
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, precision=precision,
        ema=ema, ckpt_every=ckpt_every, val_every=val_every, seed=seed, device=device,
    )  # fmt: skip
    summary = train_vae(manifest, out, preset=preset, train_cfg=cfg, resume=resume,
                        crop_frames=crop_frames, lr=lr, disc_start=disc_start,
                        latent_channels=latent_channels)  # fmt: skip
    print_summary(summary, "vae", out)
