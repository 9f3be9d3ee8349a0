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

With ``condition="clap-audio"`` (AudioLDM) captions are optional: each item is conditioned on the
CLAP audio embedding of its crop (a composition: of the composition), dropped to the CLAP text
embedding of "" with the same probability, through the U-Net's class embedding; ``maa generate``
then conditions on the CLAP text embedding of the prompt (:mod:`maa.condition`). A text encoder
whose encoding is one pooled vector (``clip:PATH``) trains the same class-embedding U-Net.

With ``task="inpaint"`` the bundle's text-to-audio ``unet`` is fine-tuned into ``unet_inpaint``,
a U-Net with ``2z + 1`` input channels ``[x_t, z0 · (1 − m), m]`` (its new input channels start
at zero, so before any step it predicts exactly what the text-to-audio U-Net does), on random
time-span and time-frequency-box masks ``m`` (1 = generated); ``maa inpaint`` uses it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from torch import nn

from maa.bundle import Bundle
from maa.condition import check_condition, load_conditioner
from maa.data import AudioClips
from maa.device import resolve_device
from maa.errors import MaaError
from maa.generate import INPAINT_UNET, Generator, mel_image
from maa.manifest import coerce, read_manifest, select_split, validate
from maa.mel import MelSpectrogram
from maa.models.unet import (
    NoiseSchedule,
    UNetConfig,
    build_unet,
    build_unet_for,
    get_unet_config,
)
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
from maa.text import TextEncoder
from maa.trainer import StepContext, TrainConfig, TrainSummary, lr_warmup, state_dir, train
from maa.vocoder import resolve_vocoder_for

__all__ = ["INPAINT_UNET", "LDMConfig", "LDMTask", "LdmTrainSummary", "encode_waves", "train_ldm"]
TASKS = ("text-to-audio", "inpaint")
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
        base: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """``base``: with ``cfg.task == "inpaint"``, the text-to-audio U-Net's weights."""
        self.name = INPAINT_UNET if cfg.task == "inpaint" else "unet"
        self.base = base
        self.cfg, self.unet_cfg, self.schedule = cfg, unet_cfg, schedule
        self.cache, self.clips, self.bundle = cache, clips, bundle
        self.vae, self.encoder, self.seed = vae, encoder, seed
        self.val_captions, self.reprogrammer = val_captions, reprogrammer
        self.ddpm = schedule.ddpm()
        self.class_conditioned = unet_cfg.class_embed_dim > 0  # one pooled vector per item
        self.melspec = MelSpectrogram(bundle.mel)
        self._vocoder = None
        self.categories: dict[str, dict[str, Any]] = {}

    def config_dict(self) -> dict[str, Any]:
        return {
            "ldm": self.cfg.settings_dict(),
            "unet": self.unet_cfg.settings_dict(),
            "schedule": self.schedule.settings_dict(),
            "cache": self.cache.fingerprint,
            "scale_factor": self.cache.scale_factor,
        }

    def modules(self) -> dict[str, nn.Module]:
        if self.cfg.task == "inpaint":
            assert self.base is not None
            return {"unet": inpaint_unet(self.unet_cfg, self.base)}
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
        if self.cfg.condition == "clap-audio":  # the composition's own CLAP audio embedding
            emb = self.encoder.embed_audio(batch["wave"][wanted], self.bundle.mel.sample_rate)
            tokens = batch["tokens"]
            tokens[wanted, 0] = emb.to(tokens.device, tokens.dtype)
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
        if self.cfg.task == "inpaint":  # the layout of maa.edit.unet_input
            m = batch["inpaint_mask"].to(z)
            noisy = torch.cat([noisy, z * (1 - m), m], dim=1)
        target = noise if self.schedule.prediction_type == "epsilon" else (
            self.ddpm.get_velocity(z, noise, t))  # fmt: skip
        if self.class_conditioned:  # as Generator.predict_noise: the vector, no context
            cond = {"encoder_hidden_states": None, "class_labels": batch["tokens"][:, 0].float()}
        else:
            cond = {"encoder_hidden_states": batch["tokens"].float(),
                    "encoder_attention_mask": batch["mask"]}  # fmt: skip
        with ctx.accelerator.autocast():
            pred = unet(noisy, t, **cond).sample
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
        if not self.val_captions or writer is None or self.cfg.task == "inpaint":
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
        if self.cfg.task != "inpaint":  # (inpaint: the text-to-audio U-Net's encoder, kept)
            ref, enc_cfg = self.encoder.reference()
            self.bundle.set_reference("text_encoder", "text_encoder", ref, enc_cfg)
        self.bundle.save_module(
            self.name,
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
                **({"condition": self.cfg.condition} if self.cfg.condition != "text" else {}),
                **({"task": self.cfg.task} if self.cfg.task != "text-to-audio" else {}),
            },
        )


def inpaint_base(bundle: Bundle) -> dict[str, Any]:
    """The bundle's ``unet`` entry, checked to be a text-to-audio U-Net of ``maa train-ldm``
    (``z`` inputs and outputs) that ``--task inpaint`` can start from."""
    if not bundle.has("unet"):
        raise MaaError(
            f"{bundle.root}: --task inpaint fine-tunes the bundle's text-to-audio U-Net, and it "
            f"has none; train one first with `maa train-ldm --bundle {bundle.root}`"
        )
    entry = bundle.component("unet")
    cfg = entry.get("config", {})
    if entry.get("kind", "unet") != "unet" or cfg.get("in_channels") != cfg.get("out_channels"):
        raise MaaError(
            f"{bundle.root}: --task inpaint starts from a text-to-audio U-Net trained by `maa "
            f"train-ldm`; this bundle's 'unet' is a {entry.get('kind')!r} with "
            f"{cfg.get('in_channels')} inputs and {cfg.get('out_channels')} outputs"
        )
    return entry


def inpaint_unet(cfg: UNetConfig, base: dict[str, torch.Tensor]) -> nn.Module:
    """A U-Net of ``cfg`` (``2z + 1`` inputs) with the text-to-audio U-Net's weights ``base``:
    ``conv_in`` takes them for its first ``z`` input channels and zeros for the rest, so on
    ``[x, ·, ·]`` it predicts what the text-to-audio U-Net predicts on ``x``."""
    unet = build_unet(cfg)
    state = dict(base)
    w = state["conv_in.weight"]  # (C, z, k, k)
    weight = w.new_zeros(w.shape[0], cfg.in_channels, *w.shape[2:])
    weight[:, : w.shape[1]] = w
    state["conv_in.weight"] = weight
    unet.load_state_dict(state)  # strict: every other weight copied as it is
    return unet


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
            # a category without captions (an uncaptioned manifest) is described by its name
            "captions": [str(x) for x in g["caption"][g["caption"].str.strip() != ""]
                         .value_counts().index[:5]] or [str(c)],
        }
        for c, g in sorted(train.groupby("category"), key=lambda kv: -len(kv[1]))
    }  # fmt: skip


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
    condition: str = "text",
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
        condition=check_condition(condition),
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
    condition: str = "text",
    clap: str | os.PathLike[str] | None = None,
    task: str = "text-to-audio",
) -> LdmTrainSummary:
    """Train (or resume) the U-Net on a manifest's train split; writes ``unet`` into the bundle.

    The bundle must already hold a ``vae`` (``maa train-vae``). ``reprogram`` is an event
    manifest for dynamic reprogramming with probability ``reprogram_prob`` per item;
    ``min_snr_gamma`` and ``balance`` are :class:`LDMConfig`'s loss weighting and data balancing.
    ``condition="clap-audio"`` conditions on the CLAP audio embeddings of the clips, from
    ``clap`` (a CLAP bundle or HF ``ClapModel`` folder; default: the shipped CLAP), instead of
    on captions, which the manifest then need not have. ``task="inpaint"`` fine-tunes the
    bundle's ``unet`` into ``unet_inpaint`` (module docstring); its preset, text encoder,
    conditioning, schedule and latent scale are the text-to-audio U-Net's, not the options'.
    """
    if task not in TASKS:
        raise MaaError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    check_condition(condition)
    if condition == "text" and clap is not None:
        raise MaaError("--clap is the CLAP of --condition clap-audio; pass both or neither")
    if condition == "clap-audio":
        if text_encoder != "minilm":
            raise MaaError(
                "--condition clap-audio conditions on the CLAP's embeddings (and generates from "
                "its text tower); leave --text-encoder out"
            )
        text_encoder = f"clap-embed:{clap if clap is not None else ''}"
    bundle = Bundle.open(bundle_dir)
    base_entry = inpaint_base(bundle) if task == "inpaint" else None
    if base_entry is not None:  # fine-tuned as it was trained
        preset = str(base_entry.get("preset", preset))
        text_encoder = str(base_entry.get("text_encoder", text_encoder))
        condition = str(base_entry.get("condition", "text"))
        prediction = NoiseSchedule.from_dict(base_entry["schedule"]).prediction_type
    if bundle.config("vae").get("time_major"):  # latent crops below run along the last axis
        raise MaaError(
            f"{bundle.root}: the VAE is an imported time-major one (AudioLDM); train-ldm trains "
            "on (z, mels/8, T/8) latents. Generate with the imported U-Net, or train a VAE "
            "into a new bundle with `maa train-vae`"
        )
    mel = bundle.mel
    cfg = resolve_config(
        bundle, preset, text_encoder, crop_seconds, lr, warmup, prediction,
        reprogram_prob if reprogram else 0.0, train_cfg.batch_size * train_cfg.grad_accum,
        min_snr_gamma, balance, condition,
    )  # fmt: skip
    cfg = cfg.override(task=task)
    schedule = NoiseSchedule(prediction_type=prediction)
    if base_entry is not None:
        schedule = NoiseSchedule.from_dict(base_entry["schedule"])
    df = _training_manifest(manifest, condition)
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
    encoder = load_conditioner(cfg.text_encoder, device)
    if condition == "clap-audio":  # recorded as loaded: an absolute path, or the shipped CLAP
        cfg = cfg.override(text_encoder=encoder.spec)
    unet_cfg = get_unet_config(preset).with_latent_channels(vae.cfg.latent_channels)
    if encoder.pooled_only:
        unet_cfg = unet_cfg.with_class_width(encoder.width)
    else:
        unet_cfg = unet_cfg.with_text_width(encoder.width)
    base = None
    if base_entry is not None:
        base_unet = build_unet_for("unet", base_entry["config"])
        bundle.load_into("unet", base_unet)
        base = base_unet.state_dict()
        z = int(base_entry["config"]["out_channels"])
        if z != vae.cfg.latent_channels:
            raise MaaError(
                f"{bundle.root}: the U-Net has {z} latent channels, the VAE "
                f"{vae.cfg.latent_channels}; retrain the U-Net with `maa train-ldm`"
            )
        unet_cfg = replace(UNetConfig.from_dict(base_entry["config"]), in_channels=2 * z + 1)
    name = INPAINT_UNET if task == "inpaint" else "unet"
    fp = fingerprint(bundle.root / bundle.component("vae")["file"], encoder, mel, clips, cfg)
    cache, reused = load_or_build_cache(
        state_dir(bundle.root, name) / "cache",
        fp,
        lambda: build_cache(clips, vae, encoder, mel, cfg, fp, device),
    )
    if base_entry is not None:  # latents scaled as the text-to-audio U-Net saw them
        cache = replace(cache, scale_factor=float(base_entry["scale_factor"]))
    reprogrammer = None
    if reprogram:
        from maa.stages.reprogram import Reprogrammer

        # valid/test recordings must not reach training through a composition either
        events = select_split(_training_manifest(reprogram, condition, events=True), "train")
        # compositions fit the training crop, so the caption describes all that is heard
        crop_s = mel.samples_for(cfg.crop_frames) / mel.sample_rate
        reprogrammer = Reprogrammer.from_manifests(None, events, mel.sample_rate, crop_s)
    task = LDMTask(
        cfg, unet_cfg, schedule, cache, clips, bundle, vae, encoder, train_cfg.seed,
        val_captions, reprogrammer, base,
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


UNCAPTIONED_EVENT = "a sound"  # clap-audio: an event's caption is never used


def _training_manifest(
    path: str | os.PathLike[str], condition: str, events: bool = False
) -> pd.DataFrame:
    """The manifest at ``path``, checked as :func:`read_manifest` does. With ``clap-audio`` its
    captions are optional: a missing column reads as empty captions, and (``events``)
    uncaptioned events get a placeholder, since only their audio conditions the model (the
    templated caption of a composition is unused)."""
    df = read_manifest(path, validate_schema=False)
    if "caption" not in df.columns:
        if condition == "text":
            raise MaaError(
                f"{path}: no 'caption' column; text conditioning trains on captions. Caption the "
                "clips (`maa distill`) or train on their audio with --condition clap-audio"
            )
        df["caption"] = ""
    validate(df, str(path))
    df = coerce(df)
    if events and condition != "text":
        df["caption"] = df["caption"].where(df["caption"].str.strip() != "", UNCAPTIONED_EVENT)
    return df
