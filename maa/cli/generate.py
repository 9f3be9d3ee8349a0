"""``maa generate``: text to audio with a bundle (the shipped default when none is given)."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console


def generate_cmd(
    prompt: str = typer.Argument(None, help="What to generate, e.g. 'a dog barks in the rain'."),
    output: Path = typer.Option(None, "-o", "--output", help="Output file (.wav, .flac, .ogg)."),
    bundle: Path = typer.Option(None, help="Bundle folder (default: the shipped bundle)."),
    duration: float = typer.Option(
        None,
        help="Seconds of audio (default 5). Longer than the model's training window (5 s for the "
        "shipped bundle): generated window by window, each continuing the last.",
    ),
    steps: int = typer.Option(
        None, help="Sampling steps (default 25, or the bundle's: 100 for imported Make-An-Audio)."
    ),
    guidance: float = typer.Option(
        None, help="Classifier-free guidance scale (default 3.0, or the bundle's)."
    ),
    sampler: str = typer.Option(
        None,
        help="ddim, dpmpp-2m (default, or the bundle's: ddim for imported releases), unipc, "
        "euler, euler-a, heun or pndm.",
    ),
    seed: int = typer.Option(None, help="Random seed (same seed → same audio on one device)."),
    negative_prompt: str = typer.Option(None, help="Steer away from this text."),
    candidates: int = typer.Option(1, help="Generate N candidates, keep the best by CLAP."),
    clap: Path = typer.Option(None, help="CLAP for reranking (bundle or HF folder)."),
    vocoder: str = typer.Option(None, help="default, griffin-lim or a vocoder bundle path."),
    prompts: Path = typer.Option(None, help="Batch mode: prompt file (one per line) or manifest."),
    out_dir: Path = typer.Option(None, help="Batch mode: output folder (+ generated.parquet)."),
    png: bool = typer.Option(False, "--png", help="Also write the spectrogram as a .png."),
    normalize: bool = typer.Option(
        True,
        "--normalize/--no-normalize",
        help="Loudness-normalise to -20 LUFS (peak ≤ -1 dBFS); --no-normalize writes the "
        "vocoder's output as it is (clipped to [-1, 1]).",
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    dtype: str = typer.Option("auto", help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16."),
    list_categories: bool = typer.Option(
        False, "--list-categories", help="Print the sound categories the bundle was trained on."
    ),
    init_audio: Path = typer.Option(
        None,
        "--init-audio",
        help="Restyle this recording with the prompt (SDEdit); the result "
        "lasts as long as the file.",
    ),
    strength: float = typer.Option(
        None,
        help="With --init-audio: 0 keeps the recording (vocoder round trip), 1 ignores it; "
        "default 0.3 (AudioLDM's style transfer: 0.5). The sampler defaults to ddim here.",
    ),
    loop: bool = typer.Option(
        False,
        "--loop",
        help="Make a seamless loop (its end runs into its start); prints the seam measure.",
    ),
    audio_prompt: Path = typer.Option(
        None,
        help="Variations of this sound: its CLAP audio embedding is the condition (bundles of "
        "`train-ldm --condition clap-audio`); with a PROMPT, a mix of the two.",
    ),
    audio_prompt_weight: float = typer.Option(
        None, help="With --audio-prompt and a PROMPT: the sound's share of the mix, 0–1 (0.5)."
    ),
    image: Path = typer.Option(
        None,
        help="The sound of this picture: its CLIP image embedding is the condition (bundles of "
        "`train-ldm --text-encoder clip:DIR`).",
    ),
    video: Path = typer.Option(
        None,
        help="A soundtrack for this video: the mean CLIP embedding of its frames; lasts as long "
        "as the video unless --duration (needs pip install 'maa\\[video]').",
    ),
    video_fps: float = typer.Option(None, help="With --video: frames embedded per second (1)."),
) -> None:
    """Generate audio from text with a trained bundle."""
    from maa.errors import MaaError
    from maa.generate import SamplingSettings
    from maa.stages.generate import generate

    if list_categories:
        _print_categories(bundle)
        return
    if init_audio is not None and duration is not None:
        raise MaaError("--duration does not apply with --init-audio: the result lasts as long "
                       "as the recording (cut the file to change it)")  # fmt: skip
    given = dict(duration=duration, steps=steps, guidance=guidance, sampler=sampler, seed=seed,
                 negative_prompt=negative_prompt, candidates=candidates,
                 normalize=normalize)  # fmt: skip
    settings = SamplingSettings(**{k: v for k, v in given.items() if v is not None})  # else default
    df = generate(
        settings, prompt, output, prompts=prompts, out_dir=out_dir, bundle=bundle, png=png,
        device=device, dtype=dtype, vocoder=vocoder, clap=clap, log=_log, reuse_seed=seed is None,
        unset=frozenset(k for k in ("sampler", "steps", "guidance") if given[k] is None),
        init_audio=init_audio, strength=strength, loop=loop, audio_prompt=audio_prompt,
        audio_prompt_weight=audio_prompt_weight, image=image, video=video, video_fps=video_fps,
        duration_from_video=duration is None,
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
    if loop:
        console.print(
            f"loop seam: spectral flux across the wrap {row.seam_ratio:.2f}× the clip's median "
            f"(its own 95th percentile: {row.seam_p95_ratio:.2f}×)",
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
