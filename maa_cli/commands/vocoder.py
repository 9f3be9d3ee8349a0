"""``maa vocode`` and ``maa train-vocoder``."""

from __future__ import annotations

from pathlib import Path

import typer

from maa_cli.commands import (
    CKPT_EVERY,
    EMA_DECAY,
    GRAD_ACCUM,
    PRECISION,
    RESUME,
    SEED,
    TRAIN_DEVICE,
    console,
    handle_errors,
    print_summary,
    train_config,
)


def vocode_cmd(
    audio: Path = typer.Argument(..., help="Audio file to resynthesise, or a .npy log-mel."),
    out: Path = typer.Option(..., "-o", "--out", help="Output audio file (.wav/.flac/.ogg)."),
    vocoder: str = typer.Option(
        "default",
        help="default (pretrained HiFi-GAN, mel preset 'default'), griffin-lim, or a bundle "
        "folder written by train-vocoder.",
    ),
    mel: str = typer.Option(
        None, help="Mel preset of the input (default: the vocoder bundle's, else 'default')."
    ),
    dtype: str = typer.Option("fp32", help="fp32, bf16, fp16 (GPU) or auto."),
    device: str = typer.Option("cpu", help="cpu, cuda or auto."),
) -> None:
    """Resynthesise a file through mel → vocoder and print the log-mel L1 of the result."""
    from stages.vocoder import vocode

    res = vocode(audio, out, vocoder, mel, device, dtype)
    if res["warning"]:
        console.print(f"[yellow]warning:[/] {res['warning']}", highlight=False, soft_wrap=True)
    console.print(
        f"{res['vocoder']} ({res['label']}): {res['seconds']:.2f} s at {res['sample_rate']} Hz, "
        f"{res['x_real_time']:.1f}× real time; log-mel L1 {res['logmel_l1']:.4f} → {res['out']}",
        highlight=False,
        soft_wrap=True,
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
    from stages.vocoder import train_vocoder

    cfg = train_config(
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, precision=precision,
        ema=ema, ckpt_every=ckpt_every, val_every=val_every, seed=seed, device=device,
        grad_clip=None,  # HiFi-GAN trains without clipping
    )  # fmt: skip
    s = train_vocoder(manifest, out, preset, cfg, resume, init, mel, segment_frames, lr)
    print_summary(s, "vocoder", out)
    console.print(
        f"mel preset {s['mel_preset']}; try it: maa vocode IN.wav -o OUT.wav --vocoder {out}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("vocode")(handle_errors(vocode_cmd))
    app.command("train-vocoder")(handle_errors(train_vocoder_cmd))
