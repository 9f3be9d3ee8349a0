"""The KL spectrogram autoencoder: log-mel ``(B, n_mels, T)`` ⇄ latent ``(B, z, n_mels/8, T/8)``.

Built on diffusers' ``AutoencoderKL`` (one input channel: the mel is an image of n_mels × T),
so AudioLDM/Tango-style checkpoints and tools work with it. Presets:

* ``paper`` — the Make-An-Audio release: ch 128, ch_mult (1, 2, 2, 4), 2 res blocks, z = 4.
* ``default`` — the shipped bundle, small enough to train on a laptop CPU.
* ``tiny`` — tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers import AutoencoderKL
from torch import nn

from maa.config import Config
from maa.errors import BundleError, MaaError, choose


@dataclass(frozen=True)
class VAEConfig(Config):
    """Architecture of the spectrogram VAE (diffusers ``AutoencoderKL`` kwargs)."""

    # added after runs were first saved: left out of saved run settings at their defaults
    LATER_FIELDS: ClassVar[frozenset[str]] = frozenset({"attention_levels", "time_major"})

    block_out_channels: tuple[int, ...] = (128, 256, 256, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    mid_block_add_attention: bool = True
    # self-attention after every res block of these levels (encoder order, the decoder mirrors
    # it), as the CompVis autoencoder's attn_resolutions; empty: none (every trained preset)
    attention_levels: tuple[bool, ...] = ()
    # log-mel values are mapped to (mel - shift) / scale before encoding and back after decoding,
    # so an ln-mel in [-11.5, 2.5] reaches the network near [-1.3, 1.5]
    shift: float = 0.0
    scale: float = 1.0
    # the image the network sees: (n_mels, T) by default; AudioLDM's VAE was trained on
    # (T, n_mels) images, so its latents are (z, T/d, n_mels/d). encode/decode still take and
    # give (B, n_mels, T)
    time_major: bool = False

    @property
    def downsample(self) -> int:
        """Spatial reduction factor in both axes (2 per block after the first)."""
        return 2 ** (len(self.block_out_channels) - 1)


VAE_PRESETS: dict[str, VAEConfig] = {
    "paper": VAEConfig(),
    "default": VAEConfig(
        block_out_channels=(32, 64, 128, 128),
        layers_per_block=1,
        norm_num_groups=16,
        shift=-5.0,
        scale=5.0,
    ),
    "tiny": VAEConfig(
        block_out_channels=(8, 16, 16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        mid_block_add_attention=False,
        shift=-5.0,
        scale=5.0,
    ),
}


def get_vae_config(preset: str) -> VAEConfig:
    return choose(VAE_PRESETS, preset, "VAE preset")


class SpectrogramVAE(nn.Module):
    """Log-mel autoencoder.

    ``encode(mel)`` takes ``(B, n_mels, T)`` (T a multiple of ``downsample``) and returns the
    diagonal Gaussian posterior over ``(B, z, n_mels/8, T/8)`` latents (``.mean``, ``.sample()``,
    ``.kl()``); ``decode(z)`` returns ``(B, n_mels, T)``. With ``cfg.time_major`` the latents are
    ``(B, z, T/8, n_mels/8)`` (:meth:`latent_size` gives the shape either way).
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = len(cfg.block_out_channels)
        attn = cfg.attention_levels or (False,) * n
        if len(attn) != n:
            raise MaaError(
                f"VAE config: attention_levels has {len(attn)} flags for {n} channel levels"
            )
        self.model = AutoencoderKL(
            in_channels=1,
            out_channels=1,
            down_block_types=tuple(
                "AttnDownEncoderBlock2D" if a else "DownEncoderBlock2D" for a in attn
            ),
            up_block_types=tuple(
                "AttnUpDecoderBlock2D" if a else "UpDecoderBlock2D" for a in reversed(attn)
            ),
            block_out_channels=cfg.block_out_channels,
            layers_per_block=cfg.layers_per_block,
            latent_channels=cfg.latent_channels,
            norm_num_groups=cfg.norm_num_groups,
            mid_block_add_attention=cfg.mid_block_add_attention,
            force_upcast=False,
        )

    @property
    def downsample(self) -> int:
        return self.cfg.downsample

    def latent_size(self, n_mels: int, frames: int) -> tuple[int, int]:
        """Latent ``(H, W)`` for a ``(n_mels, frames)`` log-mel."""
        d = self.downsample
        return (frames // d, n_mels // d) if self.cfg.time_major else (n_mels // d, frames // d)

    def _check(self, mel: torch.Tensor) -> None:
        if mel.dim() != 3:
            raise MaaError(
                f"VAE expects a log-mel batch (B, n_mels, T), got shape {tuple(mel.shape)}"
            )
        d = self.downsample
        if mel.shape[1] % d or mel.shape[2] % d:
            raise MaaError(
                f"VAE input {tuple(mel.shape)}: mel bins and frames must be multiples of {d}; "
                "pad frames with maa.mel.pad_frames"
            )

    def encode(self, mel: torch.Tensor):
        """``(B, n_mels, T)`` → posterior over ``(B, z, n_mels/8, T/8)``."""
        self._check(mel)
        x = ((mel - self.cfg.shift) / self.cfg.scale).unsqueeze(1)
        if self.cfg.time_major:
            x = x.transpose(2, 3)
        return self.model.encode(x).latent_dist

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, z, n_mels/8, T/8)`` → log-mel ``(B, n_mels, T)``."""
        mel = self.model.decode(z).sample.squeeze(1)
        if self.cfg.time_major:
            mel = mel.transpose(1, 2)
        return mel * self.cfg.scale + self.cfg.shift

    def forward(self, mel: torch.Tensor, sample: bool = True):
        """Reconstruction and posterior: ``(recon (B, n_mels, T), posterior)``."""
        posterior = self.encode(mel)
        z = posterior.sample() if sample else posterior.mode()
        return self.decode(z), posterior

    def last_layer(self) -> torch.Tensor:
        """Weight of the decoder's output conv (for the GAN's adaptive weight)."""
        return self.model.decoder.conv_out.weight


def build_vae(cfg: VAEConfig) -> SpectrogramVAE:
    """Factory: a randomly initialised VAE for ``cfg``."""
    return SpectrogramVAE(cfg)


def load_vae(bundle, device: torch.device | str = "cpu") -> SpectrogramVAE:
    """The bundle's ``vae`` component, in eval mode on ``device``."""
    cfg = VAEConfig.from_dict(bundle.config("vae"), f"{bundle.root} component 'vae'", BundleError)
    vae = build_vae(cfg)
    bundle.load_into("vae", vae)
    return vae.to(device).eval()
