"""``maa train-ldm`` and ``maa generate``."""

from __future__ import annotations

from pathlib import Path

import typer

from maa_cli.commands import (
    CKPT_EVERY,
    GRAD_ACCUM,
    PRECISION,
    RESUME,
    SEED,
    TRAIN_DEVICE,
    console,
    handle_errors,
    print_summary,
    train_config,
)


def train_ldm_cmd(
    manifest: Path = typer.Option(..., help="Captioned manifest (.parquet); uses its train split."),
    bundle: Path = typer.Option(..., help="Bundle folder with a trained vae; gets the unet."),
    text_encoder: str = typer.Option(
        "minilm", help="minilm (packaged), clap:PATH, t5:PATH or bert:PATH (local folders)."
    ),
    preset: str = typer.Option("tiny", help="U-Net size: tiny, default or paper."),
    max_steps: int = typer.Option(1000, help="Total optimiser steps."),
    batch_size: int = typer.Option(16, help="Clips per step (per GPU)."),
    grad_accum: int = GRAD_ACCUM,
    lr: float = typer.Option(None, help="AdamW learning rate (default: the preset's)."),
    warmup: int = typer.Option(None, help="Linear warm-up steps (default: the preset's)."),
    precision: str = PRECISION,
    ema: float = typer.Option(
        0.9999, help="EMA decay of the exported weights (0: export the raw weights)."
    ),
    crop_seconds: float = typer.Option(
        None, help="Training crop in seconds, rounded up to 8 frames (default: the preset's)."
    ),
    prediction: str = typer.Option("epsilon", help="Training target: epsilon or v_prediction."),
    val_every: int = typer.Option(0, help="Generate validation prompts every N steps (0: off)."),
    ckpt_every: int = CKPT_EVERY,
    seed: int = SEED,
    device: str = TRAIN_DEVICE,
    resume: bool = RESUME,
    reprogram: Path = typer.Option(
        None, help="Event manifest for dynamic reprogramming (fresh compositions every epoch)."
    ),
    reprogram_prob: float = typer.Option(
        0.5, help="With --reprogram: probability that an item is replaced by a composition."
    ),
) -> None:
    """Train the text-conditioned latent diffusion U-Net on cached VAE latents."""
    from stages.ldm import train_ldm

    cfg = train_config(
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, precision=precision,
        ema=ema or None, ckpt_every=ckpt_every, val_every=val_every, seed=seed,
        device=device,
    )  # fmt: skip
    summary = train_ldm(
        manifest, bundle, preset, text_encoder, cfg, resume, crop_seconds, lr, warmup,
        prediction, reprogram, reprogram_prob,
    )  # fmt: skip
    print_summary(summary, "unet", bundle)
    cache = "reused" if summary["cache_reused"] else "built"
    console.print(
        f"latent cache {summary['cache']} {cache}; scale_factor {summary['scale_factor']:.4f}; "
        f"crop {summary['crop_frames']} frames",
        highlight=False,
    )


def _default_bundle() -> Path:
    from maa_cli.errors import MaaError
    from maa_cli.system import ASSETS

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
    from maa_cli.errors import MaaError
    from maa_cli.generate import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, Generator
    from stages.generate import (
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
    from maa_cli.generate import check_prompts, frames_for_duration, make_scheduler
    from maa_cli.mel import get_mel_preset

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
    from maa_cli.generate import OUT_OF_DOMAIN_COSINE

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

    from maa_cli.bundle import Bundle
    from maa_cli.errors import MaaError
    from maa_cli.generate import bundle_categories

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
    from maa_cli.models.unet import NoiseSchedule

    return NoiseSchedule()


def register(app: typer.Typer) -> None:
    app.command("train-ldm")(handle_errors(train_ldm_cmd))
    app.command("generate")(handle_errors(generate_cmd))
