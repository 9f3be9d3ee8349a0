"""``maa generate``: text to audio with a bundle (the shipped default when none is given)."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console


def _default_bundle() -> Path:
    from maa.errors import MaaError
    from maa.system import ASSETS

    path = ASSETS / "default_bundle"
    if not (path / "bundle.json").is_file():
        raise MaaError(
            "no default bundle is shipped with this installation; pass --bundle DIR "
            "(a folder trained with `maa train-vae` and `maa train-ldm`)"
        )
    return path


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
    from maa.errors import MaaError
    from maa.generate import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, Generator
    from maa.stages.generate import (
        check_output,
        check_writable,
        generate_batch,
        generate_one,
        read_prompts,
    )

    if list_categories:
        _print_categories(bundle or _default_bundle())
        return
    batch = prompts is not None
    if batch and (prompt is not None or output is not None):
        raise MaaError("pass either PROMPT -o OUT or --prompts FILE --out-dir DIR, not both")
    if batch and out_dir is None:
        raise MaaError("--prompts needs --out-dir DIR for the generated files")
    if not batch and prompt is None:
        raise MaaError("pass a PROMPT (and -o OUT.wav), or --prompts FILE --out-dir DIR")
    if not batch and output is None:
        raise MaaError("pass -o OUT.wav to say where to write the audio")
    kwargs = {
        "duration": duration,
        "steps": steps or DEFAULT_STEPS,
        "guidance": DEFAULT_GUIDANCE if guidance is None else guidance,
        "sampler": sampler or DEFAULT_SAMPLER,
        "negative_prompt": negative_prompt,
        "candidates": candidates,
    }
    # validate every input before loading models or sampling
    from maa.generate import check_prompts, frames_for_duration, make_scheduler
    from maa.mel import get_mel_preset

    texts = read_prompts(prompts) if batch else check_prompts(prompt)
    frames_for_duration(duration, get_mel_preset("default"))
    make_scheduler(kwargs["sampler"], _schedule())
    if batch:
        if not out_dir.exists() and not out_dir.parent.is_dir():
            raise MaaError(f"--out-dir {out_dir}: folder {out_dir.parent} does not exist")
        if out_dir.exists():
            check_writable(out_dir, f"--out-dir {out_dir}")
    else:
        check_output(output)
    gen = Generator.from_bundle(
        bundle or _default_bundle(), device=device, dtype=dtype, vocoder=vocoder, clap=clap
    )
    warning = getattr(gen.vocoder, "warning", None)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    _note_out_of_domain(gen, texts, bundle)
    if batch:
        df = generate_batch(gen, texts, out_dir, png=png, seed=seed, **kwargs)
        console.print(f"wrote {len(df)} file(s) and generated.parquet to [bold]{out_dir}[/]")
        return
    clip = generate_one(gen, texts[0], output, png=png, seed=seed, **kwargs)
    score = f", CLAP {clip.clap_score:.3f}" if clip.clap_score is not None else ""
    console.print(
        f"wrote {output} ({clip.wave.numel() / clip.sr:.2f} s at {clip.sr} Hz, seed {clip.seed}"
        f"{score})",
        highlight=False,
    )


def _note_out_of_domain(gen, texts: list[str], bundle: Path | None) -> None:
    """One line when a prompt is far from every category the bundle was trained on."""
    from maa.generate import OUT_OF_DOMAIN_COSINE

    nearest = gen.nearest_categories(texts)
    far = [(t, n) for t, n in zip(texts, nearest, strict=True) if n and n[1] < OUT_OF_DOMAIN_COSINE]
    if not far:
        return
    which = "--list-categories" + (f" --bundle {bundle}" if bundle else "")
    text, (cat, sim) = far[0]
    what = f"{text!r} is" if len(far) == 1 else f"{len(far)} prompts (e.g. {text!r}) are"
    console.print(
        f"[yellow]note:[/] {what} far from the {len(gen.categories)} sound categories this "
        f"model was trained on (nearest: {cat}, similarity {sim:.2f}); it still generates, "
        f"but expect a loose match. See them with `maa generate {which}` or MODEL_CARD.md.",
        highlight=False,
    )


def _print_categories(bundle: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from maa.bundle import Bundle
    from maa.errors import MaaError
    from maa.generate import bundle_categories

    b = Bundle.open(bundle)
    cats = bundle_categories(b)
    if not cats:
        raise MaaError(
            f"{b.root}: the bundle records no categories (its training manifest had no "
            "'category' column)"
        )
    table = Table(title=f"{len(cats)} categories of {b.root}")
    for col in ("category", "train clips", "example caption"):
        table.add_column(col)
    for name, info in cats.items():
        table.add_row(name, str(info["clips"]), info["captions"][0])
    Console().print(table)  # stdout: the list is the command's output


def _schedule():
    from maa.models.unet import NoiseSchedule

    return NoiseSchedule()
