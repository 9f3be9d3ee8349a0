"""``maa continue``: extend a recording from a prompt, window by window."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli import edit_options as opt


def continue_cmd(
    audio: Path = typer.Argument(..., help="Recording to extend."),
    prompt: str = typer.Argument(..., help="What the continuation should sound like."),
    seconds: float = typer.Option(..., help="Seconds to add after the recording."),
    output: Path = opt.OUTPUT,
    bundle: Path = opt.BUNDLE,
    steps: int = opt.STEPS,
    guidance: float = opt.GUIDANCE,
    sampler: str = opt.SAMPLER,
    seed: int = opt.SEED,
    negative_prompt: str = opt.NEGATIVE_PROMPT,
    candidates: int = opt.CANDIDATES,
    clap: Path = opt.CLAP,
    vocoder: str = opt.VOCODER,
    png: bool = opt.PNG,
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
) -> None:
    """Continue a recording: the file is kept and the model writes what comes next."""
    from maa.stages.edit import continue_file

    settings = opt.sampling_settings(
        steps=steps, guidance=guidance, sampler=sampler, seed=seed,
        negative_prompt=negative_prompt, candidates=candidates,
    )  # fmt: skip
    opt.report(continue_file(
        settings, audio, prompt, output, seconds, bundle=bundle, png=png, device=device,
        dtype=dtype, vocoder=vocoder, clap=clap, log=opt.log,
    ))  # fmt: skip
