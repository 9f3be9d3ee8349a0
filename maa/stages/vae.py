"""Stage: the KL spectrogram autoencoder (``maa train-vae``, ``maa reconstruct``).

Loss (official Make-An-Audio/LDM recipe, no perceptual term):
``Σ|x − x̂| / exp(logvar) + logvar`` (learned scalar ``logvar``) ``+ kl_weight · KL``
``+ adaptive_weight · disc_factor · (−D(x̂))`` with the multi-window discriminator trained by
the hinge loss from ``disc_start`` on. Optimisers: Adam(β = 0.5, 0.9) for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from maa.audio import load_audio, require_length
from maa.bundle import Bundle
from maa.config import Config
from maa.data import AudioClips, CropDataset
from maa.errors import MaaError, check_count, choose
from maa.fsutil import atomic_path
from maa.generate import save_spectrogram_png
from maa.manifest import read_manifest
from maa.mel import MelPreset, MelSpectrogram, get_mel_preset, pad_frames
from maa.models.discriminator import (
    DiscConfig,
    MultiWindowDiscriminator,
    adaptive_weight,
    hinge_d_loss,
)
from maa.models.vae import SpectrogramVAE, VAEConfig, build_vae, get_vae_config, load_vae
from maa.trainer import StepContext, TrainConfig, TrainSummary, train


@dataclass(frozen=True)
class VAELossConfig(Config):
    """Loss and optimiser settings of one preset."""

    mel: str = "default"
    crop_frames: int = 256
    lr: float = 4.5e-6 * 16  # the LDM recipe: 4.5e-6 × batch size
    kl_weight: float = 1e-6
    disc_start: int = 50001
    disc_weight: float = 0.5
    disc_channels: int = 32
    disc_windows: tuple[int, ...] = (32, 64, 128)


TRAIN_PRESETS: dict[str, VAELossConfig] = {
    "paper": VAELossConfig(mel="paper", crop_frames=624),
    "default": VAELossConfig(crop_frames=256, lr=2e-4, disc_start=3000, disc_channels=16),
    "tiny": VAELossConfig(
        crop_frames=64, lr=2e-3, disc_start=1000, disc_channels=8, disc_windows=(16, 32)
    ),
}


def get_train_preset(name: str) -> VAELossConfig:
    return choose(TRAIN_PRESETS, name, "preset")


class VAELoss(nn.Module):
    """The trainable parts of the loss: the scalar ``logvar`` and the discriminator."""

    def __init__(self, disc: MultiWindowDiscriminator) -> None:
        super().__init__()
        self.logvar = nn.Parameter(torch.zeros(()))
        self.disc = disc


class VAETask:
    """:class:`~maa.trainer.TrainTask` for the spectrogram VAE."""

    name = "vae"
    # logvar is used outside the loss module's forward, so DDP could not reduce its gradient
    no_ddp = ("loss",)

    def __init__(
        self,
        clips: AudioClips,
        valid: AudioClips | None,
        mel: MelPreset,
        vae_cfg: VAEConfig,
        loss_cfg: VAELossConfig,
        bundle: Bundle,
        preset: str,
        seed: int,
    ) -> None:
        if loss_cfg.crop_frames % vae_cfg.downsample:
            raise MaaError(
                f"--crop-frames {loss_cfg.crop_frames} must be a multiple of {vae_cfg.downsample}"
            )
        self.clips, self.valid = clips, valid
        self.mel, self.vae_cfg, self.loss_cfg = mel, vae_cfg, loss_cfg
        self.bundle, self.preset, self.seed = bundle, preset, seed
        self.melspec = MelSpectrogram(mel)

    def config_dict(self) -> dict[str, Any]:
        configs = {"vae": self.vae_cfg, "loss": self.loss_cfg, "mel": self.mel}
        return {k: c.settings_dict() for k, c in configs.items()}

    def modules(self) -> dict[str, nn.Module]:
        c = self.loss_cfg
        disc = MultiWindowDiscriminator(
            DiscConfig(self.mel.n_mels, c.disc_windows, c.disc_channels), pad_value=self.mel.floor
        )
        return {"vae": build_vae(self.vae_cfg), "loss": VAELoss(disc)}

    def build_optimizers(self, modules, train_cfg: TrainConfig):
        lr = self.loss_cfg.lr
        g = torch.optim.Adam(
            [*modules["vae"].parameters(), modules["loss"].logvar], lr=lr, betas=(0.5, 0.9)
        )
        d = torch.optim.Adam(modules["loss"].disc.parameters(), lr=lr, betas=(0.5, 0.9))
        return {"g": g, "d": d}, {}

    def dataset(self) -> CropDataset:
        return CropDataset(self.clips, self.mel.samples_for(self.loss_cfg.crop_frames), self.seed)

    def ema_module(self) -> str | None:
        return "vae"

    def train_step(self, batch: torch.Tensor, modules, ctx: StepContext) -> None:
        vae, loss_mod = modules["vae"], modules["loss"]
        unwrapped_vae = ctx.accelerator.unwrap_model(vae)
        unwrapped_loss = ctx.accelerator.unwrap_model(loss_mod)
        disc = unwrapped_loss.disc
        with torch.no_grad():
            mel = self.melspec.to(batch.device)(batch)
        with ctx.accelerator.autocast():
            recon, posterior = vae(mel)
        recon = recon.float()
        b = mel.shape[0]
        rec = (mel - recon).abs()
        logvar = unwrapped_loss.logvar
        nll = (rec / torch.exp(logvar) + logvar).sum() / b
        kl = posterior.kl().sum() / b
        loss = nll + self.loss_cfg.kl_weight * kl
        gan_on = ctx.step >= self.loss_cfg.disc_start
        if gan_on:
            disc.requires_grad_(False)
            g_loss = -disc(recon).mean()
            weight = adaptive_weight(
                nll, g_loss, unwrapped_vae.last_layer(), self.loss_cfg.disc_weight
            )
            loss = loss + weight * g_loss
            disc.requires_grad_(True)
        ctx.backward(loss)
        ctx.optimizer_step("g")
        ctx.log(loss=loss, rec_l1=rec.mean(), kl=kl, logvar=logvar)
        if gan_on:
            d_loss = hinge_d_loss(disc(mel), disc(recon.detach()))
            ctx.backward(d_loss)
            ctx.optimizer_step("d")
            ctx.log(g_loss=g_loss, d_loss=d_loss, d_weight=weight)

    def validate(self, modules, step: int, writer) -> dict[str, float]:
        if self.valid is None:
            return {}
        vae = modules["vae"]
        device = next(vae.parameters()).device
        l1 = reconstruction_l1(vae, self.valid.waves, self.mel, device)
        return {"rec_l1": float(sum(l1) / len(l1))}

    def export(self, modules, step: int) -> None:
        self.bundle.save_module(
            "vae",
            modules["vae"],
            kind="vae",
            config=self.vae_cfg.to_dict(),
            extra={"preset": self.preset, "steps": step, "crop_frames": self.loss_cfg.crop_frames},
        )


@torch.no_grad()
def reconstruct_mel(vae: SpectrogramVAE, mel: torch.Tensor, preset: MelPreset) -> torch.Tensor:
    """Encode (posterior mode) and decode a log-mel ``(B, n_mels, T)``; any ``T``."""
    frames = mel.shape[-1]
    padded = pad_frames(mel, vae.downsample, preset.floor)
    return vae.decode(vae.encode(padded).mode())[..., :frames]


def reconstruction_l1(
    vae: SpectrogramVAE, waves: list[torch.Tensor], preset: MelPreset, device, max_seconds=10.0
) -> list[float]:
    """Mean absolute log-mel error of each clip's reconstruction (first ``max_seconds``)."""
    melspec = MelSpectrogram(preset).to(device)
    out = []
    for wave in waves:
        wave = wave[: int(max_seconds * preset.sample_rate)].to(device)
        mel = melspec(wave)
        out.append(float((reconstruct_mel(vae, mel, preset) - mel).abs().mean()))
    return out


def train_vae(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    preset: str = "tiny",
    train_cfg: TrainConfig = TrainConfig(),
    *,
    resume: bool = False,
    crop_frames: int | None = None,
    lr: float | None = None,
    disc_start: int | None = None,
    latent_channels: int | None = None,
) -> TrainSummary:
    """Train (or resume) the VAE on a manifest's train split; writes ``vae`` into bundle ``out``.

    ``latent_channels`` overrides the preset's (4; AudioLDM uses 8): more detail survives the
    autoencoder at the same ×8 downsampling, for a U-Net whose cost barely changes."""
    overrides = {"crop_frames": crop_frames, "lr": lr, "disc_start": disc_start}
    loss_cfg = get_train_preset(preset).override(**overrides)
    if latent_channels is not None:
        check_count("--latent-channels", latent_channels, 1, 64)
    vae_cfg = get_vae_config(preset).override(latent_channels=latent_channels)
    mel = get_mel_preset(loss_cfg.mel)
    df = read_manifest(manifest)
    clips = AudioClips(df, mel.sample_rate, split="train")
    valid = None
    if "valid" in set(df["split"]):
        valid = AudioClips(df, mel.sample_rate, split="valid")
    bundle = Bundle.create(out, mel)
    task = VAETask(clips, valid, mel, vae_cfg, loss_cfg, bundle, preset, train_cfg.seed)
    run = train(task, out, train_cfg, resume=resume)
    return TrainSummary.of(run, clips=len(clips), skipped=clips.failures)


def reconstruct(
    audio: str | os.PathLike[str],
    out: str | os.PathLike[str],
    bundle_dir: str | os.PathLike[str],
    device: str = "cpu",
) -> dict[str, Any]:
    """Run a file through the bundle's VAE; write ``.png`` (side by side) or ``.npy`` (recon mel).

    Returns the log-mel L1 between input and reconstruction.
    """
    out = Path(out)
    if out.suffix.lower() not in (".png", ".npy"):
        raise MaaError(f"{out}: output must be .png (spectrogram picture) or .npy (log-mel array)")
    bundle = Bundle.open(bundle_dir)
    vae = load_vae(bundle, device)
    preset = bundle.mel
    wave, _ = load_audio(audio, preset.sample_rate)
    require_length(wave, preset.sample_rate, preset.latent_frame_samples, str(audio))
    mel = MelSpectrogram(preset).to(device)(wave.to(device))
    recon = reconstruct_mel(vae, mel, preset)
    l1 = float((recon - mel).abs().mean())
    if out.suffix.lower() == ".npy":
        with atomic_path(out) as tmp, tmp.open("wb") as f:
            np.save(f, recon[0].cpu().numpy())
    else:
        titles = ["input", f"reconstruction (L1 {l1:.3f})"]
        save_spectrogram_png(out, [mel[0].cpu(), recon[0].cpu()], preset, titles)
    return {"l1": l1, "frames": int(mel.shape[-1]), "out": str(out)}


def reconstruction_report(
    manifest: str | os.PathLike[str],
    bundle_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    split: str | None = "valid",
    device: str = "cpu",
) -> dict[str, Any]:
    """Per-file reconstruction L1 over a manifest split; per-file rows go to ``out`` (Parquet)."""
    bundle = Bundle.open(bundle_dir)
    vae = load_vae(bundle, device)
    df = read_manifest(manifest)
    sr = bundle.mel.sample_rate
    shortest = bundle.mel.latent_frame_samples / sr  # one latent frame; shorter files are skipped
    clips = AudioClips(df, sr, split=split, min_seconds=shortest, allow_silent=True)
    l1 = reconstruction_l1(vae, clips.waves, bundle.mel, device)
    rows = pd.DataFrame({"audio_path": clips.paths, "rec_l1": l1})
    if out is not None:
        with atomic_path(out) as tmp:
            rows.to_parquet(tmp, index=False)
    return {
        "files": len(rows),
        "mean_l1": float(rows["rec_l1"].mean()),
        "worst": rows.nlargest(3, "rec_l1").to_dict("records"),
        "skipped": clips.failures,
    }
