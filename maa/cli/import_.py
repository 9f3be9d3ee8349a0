"""``maa import …``: released models of other toolkits → ``maa`` bundles, offline.

One subcommand per source; each calls one importer in :mod:`maa.importers` and prints the same
summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from maa.cli.common import console, handle_errors

if TYPE_CHECKING:
    from maa.importers import ImportSummary

import_app = typer.Typer(
    help="Import released pretrained models (local files) as maa bundles.", no_args_is_help=True
)
OUT = typer.Option(..., "-o", "--out", help="Bundle folder to write (must not exist yet).")


@import_app.command("audioldm")
@handle_errors
def audioldm_cmd(
    folder: Path = typer.Argument(
        ...,
        help="A diffusers AudioLDM folder (unet/ vae/ text_encoder/ tokenizer/ vocoder/ "
        "scheduler/), e.g. a local snapshot of cvssp/audioldm-s-full-v2.",
    ),
    out: Path = OUT,
) -> None:
    """Import a diffusers-format AudioLDM folder as a bundle on the 'audioldm' mel preset."""
    from maa.importers.audioldm import import_audioldm

    _print_summary(import_audioldm(folder, out))


@import_app.command("make-an-audio")
@handle_errors
def make_an_audio_cmd(
    ckpt: Path = typer.Option(..., help="The release's Lightning checkpoint (maa1_full.ckpt)."),
    vocoder: Path = typer.Option(
        ..., help="The release's BigVGAN folder (best_netG.pt and args.yml)."
    ),
    out: Path = OUT,
    config: Path = typer.Option(
        None,
        help="Its config (txt2audio_args.yaml), checked against the checkpoint; without it the "
        "architecture is read from the checkpoint's shapes.",
    ),
) -> None:
    """Import the official Make-An-Audio release as a bundle on the 'paper' mel preset."""
    from maa.importers.make_an_audio import import_make_an_audio

    _print_summary(import_make_an_audio(ckpt, vocoder, out, config, log=_note))


def _note(message: str) -> None:
    console.print(message, highlight=False)


def _print_summary(s: ImportSummary) -> None:
    for name, count in s.tensors.items():
        console.print(
            f"{name}: {count} tensors, {s.parameters[name]:,} parameters", highlight=False
        )
    for note in s.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    console.print(f"imported {s.source} → bundle [bold]{s.out}[/]", highlight=False)
