"""``maa train-vae`` and ``maa reconstruct``."""

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
    from stages.vae import train_vae

    cfg = train_config(
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, precision=precision,
        ema=ema, ckpt_every=ckpt_every, val_every=val_every, seed=seed, device=device,
    )  # fmt: skip
    summary = train_vae(manifest, out, preset, cfg, resume, crop_frames, lr, disc_start)
    print_summary(summary, "vae", out)


def reconstruct_cmd(
    audio: Path = typer.Argument(None, help="Audio file to reconstruct."),
    out: Path = typer.Option(None, "-o", "--out", help=".png side by side, or .npy log-mel."),
    bundle: Path = typer.Option(..., help="Bundle with a trained vae."),
    report: Path = typer.Option(None, help="Instead of one file: a manifest to score."),
    split: str = typer.Option("valid", help="With --report: split to score ('all' for every row)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Show what the VAE does: reconstruction L1 on log-mel and a side-by-side spectrogram."""
    from maa_cli.errors import MaaError

    if report is not None:
        from stages.vae import reconstruction_report

        res = reconstruction_report(report, bundle, out, None if split == "all" else split, device)
        console.print(f"{res['files']} file(s): mean log-mel L1 {res['mean_l1']:.4f}")
        for row in res["worst"]:
            console.print(f"  worst: {row['audio_path']} L1 {row['rec_l1']:.4f}", highlight=False)
        return
    if audio is None or out is None:
        raise MaaError("pass an audio file and -o OUT.png|OUT.npy, or --report MANIFEST")
    from stages.vae import reconstruct

    res = reconstruct(audio, out, bundle, device)
    console.print(f"log-mel L1 {res['l1']:.4f} over {res['frames']} frames → {res['out']}")


def register(app: typer.Typer) -> None:
    app.command("train-vae")(handle_errors(train_vae_cmd))
    app.command("reconstruct")(handle_errors(reconstruct_cmd))
