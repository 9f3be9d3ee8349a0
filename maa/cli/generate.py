"""``maa generate``: text to audio with a bundle (the shipped default when none is given)."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console


def generate_cmd(
    prompt: str = typer.Argument(None, help="What to generate, e.g. 'a dog barks in the rain'."),
    output: Path = typer.Option(None, "-o", "--output", help="Output file (.wav, .flac, .ogg)."),
    bundle: Path = typer.Option(None, help="Bundle folder (default: the shipped bundle)."),
    duration: float = typer.Option(5.0, help="Seconds of audio."),
    steps: int = typer.Option(None, help="Sampling steps (default 25)."),
    guidance: float = typer.Option(None, help="Classifier-free guidance scale (default 3.0)."),
    sampler: str = typer.Option(
        None, help="ddim, dpmpp-2m (default), unipc, euler, euler-a, heun or pndm."
    ),
    seed: int = typer.Option(None, help="Random seed (same seed → same audio on one device)."),
    negative_prompt: str = typer.Option(None, help="Steer away from this text."),
    candidates: int = typer.Option(1, help="Generate N candidates, keep the best by CLAP."),
    clap: Path = typer.Option(None, help="CLAP for reranking (bundle or HF folder)."),
    vocoder: str = typer.Option(None, help="default, griffin-lim or a vocoder bundle path."),
    prompts: Path = typer.Option(None, help="Batch mode: prompt file (one per line) or manifest."),
    out_dir: Path = typer.Option(None, help="Batch mode: output folder (+ generated.parquet)."),
    png: bool = typer.Option(False, "--png", help="Also write the spectrogram as a .png."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    dtype: str = typer.Option("auto", help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16."),
    list_categories: bool = typer.Option(
        False, "--list-categories", help="Print the sound categories the bundle was trained on."
    ),
) -> None:
    """Generate audio from text with a trained bundle."""
    from maa.generate import SamplingSettings
    from maa.stages.generate import generate

    if list_categories:
        _print_categories(bundle)
        return
    given = dict(duration=duration, steps=steps, guidance=guidance, sampler=sampler, seed=seed,
                 negative_prompt=negative_prompt, candidates=candidates)  # fmt: skip
    settings = SamplingSettings(**{k: v for k, v in given.items() if v is not None})  # else default
    df = generate(
        settings, prompt, output, prompts=prompts, out_dir=out_dir, bundle=bundle, png=png,
        device=device, dtype=dtype, vocoder=vocoder, clap=clap, log=_log, reuse_seed=seed is None,
    )  # fmt: skip
    if prompts is not None:
        console.print(f"wrote {len(df)} file(s) and generated.parquet to [bold]{out_dir}[/]")
        return
    row = df.iloc[0]
    score = f", CLAP {row.clap_score:.3f}" if row.clap_score is not None else ""
    console.print(
        f"wrote {output} ({row.duration:.2f} s at {row.sample_rate} Hz, seed {row.seed}{score})",
        highlight=False,
    )


def _log(message: str) -> None:
    """A stage's ``warning: …`` or ``note: …`` line, its first word in yellow."""
    from rich.text import Text

    head, _, rest = message.partition(" ")
    console.print(Text.assemble((head, "yellow"), " ", rest))


def _print_categories(bundle: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from maa.stages.generate import categories

    root, cats = categories(bundle)
    table = Table(title=f"{len(cats)} categories of {root}")
    for col in ("category", "train clips", "example caption"):
        table.add_column(col)
    for name, info in cats.items():
        table.add_row(name, str(info["clips"]), info["captions"][0])
    Console().print(table)  # stdout: the list is the command's output
