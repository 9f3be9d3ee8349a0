"""``maa train-ldm``: the latent diffusion U-Net, conditioned on text or CLAP audio embeddings."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli import train_options as opt
from maa.cli.common import console, print_summary, train_config


def train_ldm_cmd(
    manifest: Path = typer.Option(
        ..., help="Manifest (.parquet; captioned unless --condition clap-audio); its train split."
    ),
    bundle: Path = typer.Option(..., help="Bundle folder with a trained vae; gets the unet."),
    text_encoder: str = typer.Option(
        "minilm",
        help="minilm (packaged), clap:PATH, t5:PATH, bert:PATH or clip:PATH (local folders; "
        "clip: its one normalised embedding, so `generate --image/--video` work).",
    ),
    condition: str = typer.Option(
        "text",
        help="text (captions) or clap-audio (AudioLDM: the CLAP audio embedding of each crop; "
        "captions optional; generate from text or --audio-prompt).",
    ),
    clap: Path = typer.Option(
        None,
        help="With --condition clap-audio: CLAP bundle or local HF ClapModel folder "
        "(default: the shipped CLAP).",
    ),
    task: str = typer.Option(
        "text-to-audio",
        help="text-to-audio (writes unet), or inpaint: fine-tune the bundle's unet into "
        "unet_inpaint (inputs: x_t, masked latent, mask; random span/box masks), which `maa "
        "inpaint` then uses; its size, text encoder and schedule are the unet's.",
    ),
    preset: str = typer.Option("tiny", help="U-Net size: tiny, default or paper."),
    max_steps: int = opt.MAX_STEPS,
    batch_size: int = opt.BATCH_SIZE,
    grad_accum: int = opt.GRAD_ACCUM,
    lr: float = typer.Option(None, help="AdamW learning rate (default: the preset's)."),
    warmup: int = typer.Option(None, help="Linear warm-up steps (default: the preset's)."),
    precision: str = opt.PRECISION,
    ema: float = typer.Option(
        0.9999, help="EMA decay of the exported weights (0: export the raw weights)."
    ),
    crop_seconds: float = typer.Option(
        None, help="Training crop in seconds, rounded up to 8 frames (default: the preset's)."
    ),
    prediction: str = typer.Option("epsilon", help="Training target: epsilon or v_prediction."),
    min_snr_gamma: float = typer.Option(
        0.0, help="Min-SNR-γ loss weighting (5 is the usual value; 0: plain MSE)."
    ),
    balance: float = typer.Option(
        0.0,
        help="Category balancing of the data order: clips drawn ∝ (category size)^-B "
        "(0: natural, 1: every category equally often; needs a 'category' column).",
    ),
    val_every: int = typer.Option(0, help="Generate validation prompts every N steps (0: off)."),
    ckpt_every: int = opt.CKPT_EVERY,
    seed: int = opt.SEED,
    device: str = opt.TRAIN_DEVICE,
    resume: bool = opt.RESUME,
    reprogram: Path = typer.Option(
        None, help="Event manifest for dynamic reprogramming (fresh compositions every epoch)."
    ),
    reprogram_prob: float = typer.Option(
        0.5, help="With --reprogram: probability that an item is replaced by a composition."
    ),
) -> None:
    """Train the latent diffusion U-Net on cached VAE latents (text or CLAP-audio conditioned)."""
    from maa.stages.ldm import train_ldm

    cfg = train_config(
        max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, precision=precision,
        ema=ema or None, ckpt_every=ckpt_every, val_every=val_every, seed=seed,
        device=device,
    )  # fmt: skip
    s = train_ldm(
        manifest, bundle, preset=preset, train_cfg=cfg, text_encoder=text_encoder, resume=resume,
        crop_seconds=crop_seconds, lr=lr, warmup=warmup, prediction=prediction,
        reprogram=reprogram, reprogram_prob=reprogram_prob, min_snr_gamma=min_snr_gamma,
        balance=balance, condition=condition, clap=clap, task=task,
    )  # fmt: skip
    print_summary(s, "unet_inpaint" if task == "inpaint" else "unet", bundle)
    cache = "reused" if s.cache_reused else "built"
    console.print(
        f"latent cache {s.cache} {cache}; scale_factor {s.scale_factor:.4f}; "
        f"crop {s.crop_frames} frames",
        highlight=False,
    )
