"""Options every editing command (``inpaint``, ``continue``, ``super-resolve``) shares with
``maa generate``, defined once so names, defaults and help agree, and the one-line report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from maa.cli.common import console
from maa.cli.generate import _log as log  # noqa: F401  (warning/note lines as generate prints them)

if TYPE_CHECKING:
    from maa.generate import SamplingSettings
    from maa.stages.edit import EditSummary

OUTPUT = typer.Option(None, "-o", "--output", help="Output file (.wav, .flac, .ogg).")
BUNDLE = typer.Option(None, help="Bundle folder (default: the shipped bundle).")
STEPS = typer.Option(None, help="Sampling steps (default 25).")
GUIDANCE = typer.Option(None, help="Classifier-free guidance scale (default 3.0).")
SAMPLER = typer.Option(None, help="ddim, dpmpp-2m (default), unipc, euler, euler-a, heun or pndm.")
SEED = typer.Option(None, help="Random seed (same seed → same audio on one device).")
NEGATIVE_PROMPT = typer.Option(None, help="Steer away from this text.")
CANDIDATES = typer.Option(1, help="Generate N candidates, keep the best by CLAP.")
CLAP = typer.Option(None, help="CLAP for reranking (bundle or HF folder).")
VOCODER = typer.Option(None, help="default, griffin-lim or a vocoder bundle path.")
PNG = typer.Option(
    False, "--png", help="Also write the input, mask and output spectrograms (.png beside -o)."
)
DEVICE = typer.Option("auto", help="auto, cpu, cuda or mps.")
DTYPE = typer.Option("auto", help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16.")


def sampling_settings(**given: Any) -> SamplingSettings:
    """The settings from the options a user gave (``None``: the default)."""
    from maa.generate import SamplingSettings

    return SamplingSettings(**{k: v for k, v in given.items() if v is not None})


def report(summary: EditSummary) -> None:
    """One line on what an editing command wrote and measured."""
    score = f", CLAP {summary.clap_score:.3f}" if summary.clap_score is not None else ""
    console.print(
        f"wrote {summary.output} ({summary.duration:.2f} s at {summary.sample_rate} Hz, seed "
        f"{summary.seed}{score}; log-mel L1 outside the mask {summary.outside_l1:.4f}; "
        f"{summary.seconds:.1f} s)",
        highlight=False,
    )
    if summary.png is not None:
        console.print(f"picture: {summary.png}", highlight=False)
