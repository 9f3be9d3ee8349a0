"""``maa inpaint``: regenerate spans of a recording (optionally a frequency band) from a prompt."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli import edit_options as opt


def inpaint_cmd(
    audio: Path = typer.Argument(..., help="Recording to edit."),
    prompt: str = typer.Argument(..., help="What the regenerated part should sound like."),
    span: list[str] = typer.Option(
        None,
        "--span",
        help="START:END in seconds to regenerate; repeat for more (overlapping spans are merged).",
    ),
    band: str = typer.Option(
        None,
        help="LOW:HIGH in Hz: regenerate only this band within the spans (the whole file "
        "when no --span is given).",
    ),
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
    """Regenerate parts of a recording; everything outside them is kept as it was."""
    from maa.stages.edit import inpaint_file

    settings = opt.sampling_settings(
        steps=steps, guidance=guidance, sampler=sampler, seed=seed,
        negative_prompt=negative_prompt, candidates=candidates,
    )  # fmt: skip
    opt.report(inpaint_file(
        settings, audio, prompt, output, span or [], band, bundle=bundle, png=png, device=device,
        dtype=dtype, vocoder=vocoder, clap=clap, log=opt.log,
    ))  # fmt: skip
