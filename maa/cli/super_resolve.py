"""``maa super-resolve``: regenerate the upper mel bands of low-passed or low-rate audio."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli import edit_options as opt


def super_resolve_cmd(
    audio: Path = typer.Argument(..., help="Low-passed or low-rate recording."),
    cutoff: float = typer.Option(
        None,
        help="Regenerate above this frequency (Hz); default: the file's Nyquist frequency "
        "when below the bundle's mel top (8 kHz), else the top quarter of the mel bins.",
    ),
    prompt: str = typer.Option(None, help="Optionally, what the recording is."),
    output: Path = opt.OUTPUT,
    bundle: Path = opt.BUNDLE,
    steps: int = opt.STEPS,
    guidance: float = opt.GUIDANCE,
    sampler: str = opt.SAMPLER,
    seed: int = opt.SEED,
    candidates: int = opt.CANDIDATES,
    clap: Path = opt.CLAP,
    vocoder: str = opt.VOCODER,
    png: bool = opt.PNG,
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
) -> None:
    """Bandwidth extension: keep the recording below the cutoff, regenerate above it."""
    from maa.stages.edit import super_resolve_file

    settings = opt.sampling_settings(steps=steps, guidance=guidance, sampler=sampler, seed=seed,
                                     candidates=candidates)  # fmt: skip
    opt.report(super_resolve_file(
        settings, audio, output, cutoff, prompt, bundle=bundle, png=png, device=device,
        dtype=dtype, vocoder=vocoder, clap=clap, log=opt.log,
    ))  # fmt: skip
