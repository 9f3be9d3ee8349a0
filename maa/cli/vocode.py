"""``maa vocode``: resynthesise a file through mel → vocoder."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console


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
    from maa.stages.vocoder import vocode

    res = vocode(audio, out, vocoder, mel, device, dtype)
    if res["warning"]:
        console.print(f"[yellow]warning:[/] {res['warning']}", highlight=False, soft_wrap=True)
    console.print(
        f"{res['vocoder']} ({res['label']}): {res['seconds']:.2f} s at {res['sample_rate']} Hz, "
        f"{res['x_real_time']:.1f}× real time; log-mel L1 {res['logmel_l1']:.4f} → {res['out']}",
        highlight=False,
        soft_wrap=True,
    )
