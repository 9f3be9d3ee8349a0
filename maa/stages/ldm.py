"""``maa train-ldm``: the text-conditioned latent diffusion U-Net.

Every clip of the manifest's train split is encoded once — VAE posterior (mean, std) of the whole
clip (up to ``max_cache_seconds``) and the caption's token embeddings — and cached on disk under a
fingerprint of the VAE weights, text encoder, mel preset, audio/captions and crop settings, so an
epoch costs U-Net steps only and a stale cache is never reused. Each step takes a random latent
crop, samples the posterior, drops the caption (→ the "" embedding) with probability 0.1 for
classifier-free guidance, noises it with the paper's DDPM schedule and regresses ε (or v).
All per-item randomness (crop, posterior sample, dropout, timestep, noise) comes from
:func:`~maa.trainer.item_generator`, so resuming reproduces an uninterrupted run exactly.

With ``reprogram_prob > 0`` (dynamic reprogramming, the paper's §3.2) an item is replaced by a
fresh composition of its clip with 0–2 sampled events; those are encoded on the fly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from maa.bundle import Bundle
from maa.data import AudioClips
from maa.device import resolve_device
from maa.errors import MaaError
from maa.generate import Generator, mel_image
from maa.manifest import read_manifest, select_split
from maa.mel import MelSpectrogram
from maa.models.unet import NoiseSchedule, UNetConfig, build_unet, get_unet_config
from maa.models.vae import SpectrogramVAE, load_vae
from maa.stages.ldm_data import (
    LatentCache,
    LatentDataset,
    LDMConfig,
    build_cache,
    encode_waves,
    fingerprint,
    load_or_build_cache,
    pad_tokens,
    unpad_tokens,
)
from maa.text import TextEncoder, load_text_encoder
from maa.trainer import StepContext, TrainConfig, TrainSummary, lr_warmup, state_dir, train
from maa.vocoder import resolve_vocoder_for

__all__ = ["LDMConfig", "LDMTask", "LdmTrainSummary", "encode_waves", "train_ldm"]
DEFAULT_LR = {"tiny": 1e-3, "default": 1e-4, "paper": 1e-5}
SCALE_LR = {"paper"}  # as in the release: the LR is per sample, × the effective batch size
DEFAULT_WARMUP = {"tiny": 10, "default": 1000, "paper": 10000}


@dataclass(frozen=True, kw_only=True)
class LdmTrainSummary(TrainSummary):
    cache: str  # fingerprint of the latent cache
    cache_reused: bool  # False: built by this run
    scale_factor: float
    crop_frames: int


# -- the task ---------------------------------------------------------------------------------
class LDMTask:
    """:class:`~maa.trainer.TrainTask` for the latent diffusion U-Net."""

    name = "unet"

    def __init__(
        self,
        cfg: LDMConfig,
        unet_cfg: UNetConfig,
        schedule: NoiseSchedule,
        cache: LatentCache,
        clips: AudioClips,
        bundle: Bundle,
        vae: SpectrogramVAE,
        encoder: TextEncoder,
        seed: int,
        val_captions: list[str],
        reprogrammer=None,
    ) -> None:
        self.cfg, self.unet_cfg, self.schedule = cfg, unet_cfg, schedule
        self.cache, self.clips, self.bundle = cache, clips, bundle
        self.vae, self.encoder, self.seed = vae, encoder, seed
        self.val_captions, self.reprogrammer = val_captions, reprogrammer
        self.ddpm = schedule.ddpm()
        self.melspec = MelSpectrogram(bundle.mel)
        self._vocoder = None
        self.categories: dict[str, dict[str, Any]] = {}

    def config_dict(self) -> dict[str, Any]:
        return {
            "ldm": self.cfg.to_dict(),
            "unet": self.unet_cfg.to_dict(),
            "schedule": self.schedule.to_dict(),
            "cache": self.cache.fingerprint,
            "scale_factor": self.cache.scale_factor,
        }

    def modules(self) -> dict[str, nn.Module]:
        return {"unet": build_unet(self.unet_cfg)}

    def build_optimizers(self, modules, train_cfg: TrainConfig):
        opt = torch.optim.AdamW(
            modules["unet"].parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        return {"unet": opt}, {"unet": lr_warmup(opt, self.cfg.warmup)}

    def dataset(self) -> LatentDataset:
        return LatentDataset(self.cache, self.clips, self.cfg, self.bundle.mel, self.seed,
                             self.schedule.num_train_timesteps, self.reprogrammer)  # fmt: skip

    def ema_module(self) -> str | None:
        return "unet"

    def _encode_composed(self, batch: dict[str, Any], device: torch.device) -> None:
        """Encode this batch's freshly composed clips (VAE + text) in place."""
        idx = batch["composed"].nonzero().flatten()
        if idx.numel() == 0:
            return
        self.vae.to(device)
        self.melspec.to(device)
        self.encoder.to(device)
        mean, std = encode_waves(self.vae, self.melspec, batch["wave"][idx], self.bundle.mel)
        z = (mean + std * batch["post_eps"][idx]) * self.cache.scale_factor
        batch["z"][idx] = z.to(batch["z"].dtype)
        captions = batch["captions"]
        wanted = [i for i in idx.tolist() if captions[i] is not None]
        if not wanted:
            return
        emb = self.encoder.encode([captions[i] for i in wanted])
        rows = unpad_tokens(batch["tokens"], batch["mask"])
        for i, row in zip(wanted, unpad_tokens(emb.tokens, emb.mask), strict=True):
            rows[i] = row.to(batch["tokens"].dtype)
        tokens, mask = pad_tokens(rows)
        batch["tokens"], batch["mask"] = tokens.to(device), mask.to(device)

    def train_step(self, batch: dict[str, Any], modules, ctx: StepContext) -> None:
        unet = modules["unet"]
        if "composed" in batch:
            self._encode_composed(batch, ctx.device)
        z, noise, t = batch["z"].float(), batch["noise"].float(), batch["t"]
        noisy = self.ddpm.add_noise(z, noise, t)
        target = noise if self.schedule.prediction_type == "epsilon" else (
            self.ddpm.get_velocity(z, noise, t))  # fmt: skip
        with ctx.accelerator.autocast():
            pred = unet(
                noisy,
                t,
                encoder_hidden_states=batch["tokens"].float(),
                encoder_attention_mask=batch["mask"],
            ).sample
        loss = self.loss(pred.float(), target, t)
        ctx.backward(loss)
        ctx.optimizer_step("unet")
        ctx.log(loss=loss, lr=ctx.schedulers["unet"].get_last_lr()[0])

    def loss(self, pred: torch.Tensor, target: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """MSE over the batch, per item weighted by :func:`min_snr_weights` when γ > 0."""
        gamma = self.cfg.min_snr_gamma
        if not gamma:
            return nn.functional.mse_loss(pred, target)
        alpha_bar = self.ddpm.alphas_cumprod.to(t.device)[t].float()
        weight = min_snr_weights(alpha_bar, gamma, self.schedule.prediction_type)
        return (weight * (pred - target).pow(2).flatten(1).mean(1)).mean()

    def validate(self, modules, step: int, writer) -> dict[str, float]:
        """Generate the validation prompts and log audio and spectrograms to TensorBoard."""
        if not self.val_captions or writer is None:
            return {}
        unet = modules["unet"]
        device = next(unet.parameters()).device
        if self._vocoder is None:
            self._vocoder = resolve_vocoder_for(self.bundle, device=str(device))
        mel = self.bundle.mel
        gen = Generator(unet, self.vae.to(device), self.encoder.to(device), self._vocoder, mel,
                        self.schedule, self.cache.scale_factor, device)  # fmt: skip
        seconds = mel.samples_for(self.cfg.crop_frames) / mel.sample_rate
        outs = gen.generate(
            self.val_captions, duration=seconds, steps=self.cfg.val_steps, seed=0, normalize=False
        )
        rms = []
        for i, out in enumerate(outs):
            writer.add_audio(f"valid/audio_{i}", out.wave.reshape(1, -1), step, out.sr)
            writer.add_image(f"valid/mel_{i}", mel_image(out.mel), step)
            writer.add_text(f"valid/prompt_{i}", out.prompt, step)
            rms.append(float(out.wave.pow(2).mean().sqrt()))
        return {"gen_rms": sum(rms) / len(rms)}

    def export(self, modules, step: int) -> None:
        ref, enc_cfg = self.encoder.reference()
        self.bundle.set_reference("text_encoder", "text_encoder", ref, enc_cfg)
        self.bundle.save_module(
            "unet",
            modules["unet"],
            kind="unet",
            config=self.unet_cfg.to_dict(),
            extra={
                "preset": self.cfg.preset,
                "steps": step,
                "scale_factor": self.cache.scale_factor,
                "schedule": self.schedule.to_dict(),
                "text_encoder": self.encoder.spec,
                "crop_frames": self.cfg.crop_frames,
                **({"categories": self.categories} if self.categories else {}),
            },
        )


def min_snr_weights(alpha_bar: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al., 2023) for timesteps with cumulative ᾱ ``(B,)``:
    ``min(SNR, γ)/SNR`` for ε targets, ``min(SNR, γ)/(SNR + 1)`` for v targets, SNR = ᾱ/(1−ᾱ).
    They stop the many nearly noise-free timesteps from dominating the gradient."""
    snr = alpha_bar / (1 - alpha_bar)
    clipped = snr.clamp(max=gamma)
    return clipped / snr if prediction == "epsilon" else clipped / (snr + 1)


def training_categories(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Category → ``{"clips": n, "captions": its 5 most common captions}`` over the train split,
    recorded in the bundle so ``generate`` can say what the model knows; ``{}`` when the manifest
    has no ``category`` column."""
    if "category" not in df.columns:
        return {}
    train = df[(df["split"] == "train") & df["category"].notna() & (df["category"] != "")]
    return {
        str(c): {
            "clips": len(g),
            "captions": [str(x) for x in g["caption"].value_counts().index[:5]],
        }
        for c, g in sorted(train.groupby("category"), key=lambda kv: -len(kv[1]))
    }


def resolve_config(
    bundle: Bundle,
    preset: str,
    text_encoder: str,
    crop_seconds: float | None,
    lr: float | None,
    warmup: int | None,
    prediction: str,
    reprogram_prob: float,
    batch: int = 1,
    min_snr_gamma: float = 0.0,
    balance: float = 0.0,
) -> LDMConfig:
    """The run's :class:`LDMConfig` from CLI-level options (crop in frames, preset defaults)."""
    unet_cfg = get_unet_config(preset)
    mel = bundle.mel
    if crop_seconds is not None:
        if crop_seconds <= 0:
            raise MaaError(f"--crop-seconds must be positive, got {crop_seconds}")
        frames = mel.frames_for_seconds(crop_seconds)
    elif mel.clip_frames:
        frames = mel.clip_frames
    else:
        frames = mel.frames_for_seconds(unet_cfg.crop_seconds)
    if frames % mel.frame_multiple:
        raise MaaError(f"training crop of {frames} frames is not a multiple of 8")
    if not 0.0 <= reprogram_prob <= 1.0:
        raise MaaError(f"--reprogram-prob must lie in [0, 1], got {reprogram_prob}")
    if not min_snr_gamma >= 0:
        raise MaaError(f"--min-snr-gamma must be ≥ 0 (0: off), got {min_snr_gamma}")
    if not 0.0 <= balance <= 1.0:
        raise MaaError(f"--balance must lie in [0, 1] (0: off, 1: equal categories), got {balance}")
    return LDMConfig(
        preset=preset,
        text_encoder=text_encoder,
        crop_frames=frames,
        lr=lr if lr is not None else DEFAULT_LR[preset] * (batch if preset in SCALE_LR else 1),
        warmup=warmup if warmup is not None else DEFAULT_WARMUP[preset],
        prediction=prediction,
        reprogram_prob=reprogram_prob,
        min_snr_gamma=min_snr_gamma,
        balance=balance,
    )


def train_ldm(
    manifest: str | os.PathLike[str],
    bundle_dir: str | os.PathLike[str],
    preset: str = "tiny",
    train_cfg: TrainConfig = TrainConfig(),
    *,
    text_encoder: str = "minilm",
    resume: bool = False,
    crop_seconds: float | None = None,
    lr: float | None = None,
    warmup: int | None = None,
    prediction: str = "epsilon",
    reprogram: str | os.PathLike[str] | None = None,
    reprogram_prob: float = 0.5,
    min_snr_gamma: float = 0.0,
    balance: float = 0.0,
) -> LdmTrainSummary:
    """Train (or resume) the U-Net on a manifest's train split; writes ``unet`` into the bundle.

    The bundle must already hold a ``vae`` (``maa train-vae``). ``reprogram`` is an event
    manifest for dynamic reprogramming with probability ``reprogram_prob`` per item;
    ``min_snr_gamma`` and ``balance`` are :class:`LDMConfig`'s loss weighting and data balancing.
    """
    bundle = Bundle.open(bundle_dir)
    bundle.component("vae")
    mel = bundle.mel
    cfg = resolve_config(
        bundle, preset, text_encoder, crop_seconds, lr, warmup, prediction,
        reprogram_prob if reprogram else 0.0, train_cfg.batch_size * train_cfg.grad_accum,
        min_snr_gamma, balance,
    )  # fmt: skip
    schedule = NoiseSchedule(prediction_type=prediction)
    df = read_manifest(manifest)
    if balance and "category" not in df.columns:
        raise MaaError(
            f"{manifest}: --balance needs a 'category' column to balance over; the manifest has "
            "none (pass --balance 0)"
        )
    clips = AudioClips(df, mel.sample_rate, split="train")
    val_captions: list[str] = []
    if train_cfg.val_every and cfg.val_prompts:
        valid = df[df["split"] == "valid"] if "valid" in set(df["split"]) else df
        val_captions = [c for c in dict.fromkeys(valid["caption"]) if c.strip()][: cfg.val_prompts]
    device = resolve_device(train_cfg.device)
    vae = load_vae(bundle, device)
    encoder = load_text_encoder(cfg.text_encoder, device)
    unet_cfg = (
        get_unet_config(preset)
        .with_text_width(encoder.width)
        .with_latent_channels(vae.cfg.latent_channels)
    )
    fp = fingerprint(bundle.root / bundle.component("vae")["file"], encoder, mel, clips, cfg)
    cache, reused = load_or_build_cache(
        state_dir(bundle.root, "unet") / "cache",
        fp,
        lambda: build_cache(clips, vae, encoder, mel, cfg, fp, device),
    )
    reprogrammer = None
    if reprogram:
        from maa.stages.reprogram import Reprogrammer

        # valid/test recordings must not reach training through a composition either
        events = select_split(read_manifest(reprogram), "train")
        # compositions fit the training crop, so the caption describes all that is heard
        crop_s = mel.samples_for(cfg.crop_frames) / mel.sample_rate
        reprogrammer = Reprogrammer.from_manifests(None, events, mel.sample_rate, crop_s)
    task = LDMTask(
        cfg, unet_cfg, schedule, cache, clips, bundle, vae, encoder, train_cfg.seed,
        val_captions, reprogrammer,
    )  # fmt: skip
    task.categories = training_categories(df)
    return LdmTrainSummary.of(
        train(task, bundle.root, train_cfg, resume=resume),
        skipped=clips.failures,
        clips=len(clips),
        cache_reused=reused,
        cache=fp,
        scale_factor=cache.scale_factor,
        crop_frames=cfg.crop_frames,
    )
