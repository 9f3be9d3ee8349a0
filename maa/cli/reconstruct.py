"""``maa reconstruct``: what the VAE keeps of a file (log-mel L1 and a picture)."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console


def reconstruct_cmd(
    audio: Path = typer.Argument(None, help="Audio file to reconstruct."),
    out: Path = typer.Option(None, "-o", "--out", help=".png side by side, or .npy log-mel."),
    bundle: Path = typer.Option(..., help="Bundle with a trained vae."),
    report: Path = typer.Option(None, help="Instead of one file: a manifest to score."),
    split: str = typer.Option("valid", help="With --report: split to score ('all' for every row)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Show what the VAE does: reconstruction L1 on log-mel and a side-by-side spectrogram."""
    from maa.errors import MaaError

    if report is not None:
        from maa.stages.vae import reconstruction_report

        res = reconstruction_report(report, bundle, out, None if split == "all" else split, device)
        console.print(f"{res['files']} file(s): mean log-mel L1 {res['mean_l1']:.4f}")
        for row in res["worst"]:
            console.print(f"  worst: {row['audio_path']} L1 {row['rec_l1']:.4f}", highlight=False)
        return
    if audio is None or out is None:
        raise MaaError("pass an audio file and -o OUT.png|OUT.npy, or --report MANIFEST")
    from maa.stages.vae import reconstruct

    res = reconstruct(audio, out, bundle, device)
    console.print(f"log-mel L1 {res['l1']:.4f} over {res['frames']} frames → {res['out']}")
