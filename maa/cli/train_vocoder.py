"""``maa train-vocoder``: HiFi-GAN with multi-period and multi-scale discriminators."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli import train_options as opt
from maa.cli.common import console, print_summary, train_config


def train_vocoder_cmd(
    manifest: Path = opt.MANIFEST,
    out: Path = opt.OUT,
    preset: str = typer.Option("tiny", help="Generator size: tiny, default (V1) or paper (V1)."),
    mel: str = typer.Option(None, help="Mel preset (default: the preset's; paper is 16 kHz)."),
    init: str = typer.Option(
        None, help="'default': fine-tune from the pretrained universal HiFi-GAN."
    ),
    max_steps: int = opt.MAX_STEPS,
    batch_size: int = typer.Option(16, help="Segments per step (per GPU)."),
    grad_accum: int = opt.GRAD_ACCUM,
    segment_frames: int = typer.Option(None, help="Training segment in mel frames (default 32)."),
    lr: float = typer.Option(None, help="Learning rate (default 2e-4)."),
    precision: str = opt.PRECISION,
    ema: float = opt.EMA_DECAY,
    ckpt_every: int = opt.CKPT_EVERY,
    val_every: int = opt.VAL_EVERY,
    seed: int = opt.SEED,
    device: str = opt.TRAIN_DEVICE,
    resume: bool = opt.RESUME,
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
