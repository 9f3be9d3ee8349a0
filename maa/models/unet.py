"""The latent-diffusion U-Net and its noise schedule.

The denoiser is diffusers' ``UNet2DConditionModel`` over VAE latents ``(B, z, n_mels/8, T/8)``
with cross-attention on the text encoder's token embeddings ``(B, L, D)``; ``D`` is the
``cross_attention_dim``, taken from the text encoder when a model is built for training. Presets:

* ``paper`` — Make-An-Audio: channels (320, 640), 2 res blocks per level, cross-attention at both
  levels and in the middle, 8 heads, 1 transformer layer (≈160 M parameters with 1024-d text).
* ``default`` — the shipped bundle, trainable on a workstation CPU/GPU in hours.
* ``tiny`` — tests.

:class:`NoiseSchedule` holds the paper's DDPM schedule (1000 steps, "scaled linear" betas
0.00085–0.012) and the prediction target (ε or v); it is stored in the bundle and every sampler
is built from it with diffusers' ``from_config``.

Imported models keep their own U-Net architecture: a bundle's ``unet`` of kind
``diffusers-unet`` stores the ``UNet2DConditionModel`` config as diffusers writes it
(:func:`build_unet_for`). AudioLDM's U-Net is conditioned through its class embedding instead of
cross-attention (:func:`takes_class_labels`); so are U-Nets trained on one pooled embedding
(``train-ldm --condition clap-audio`` or ``--text-encoder clip:DIR``: ``class_embed_dim``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from diffusers import DDPMScheduler, UNet2DConditionModel

from maa.config import Config
from maa.errors import MaaError, choose

PREDICTIONS = ("epsilon", "v_prediction")
DDIM_TIMESTEPS = ("trailing", "compvis")


@dataclass(frozen=True)
class UNetConfig(Config):
    """Architecture of the denoiser (maps onto ``UNet2DConditionModel`` kwargs).

    ``cross_attention_dim`` 0 means "not fixed yet": :meth:`with_text_width` sets it from the
    text encoder before building. ``cross_attn_levels`` says which resolution levels have
    transformer blocks (the middle block always has one).

    ``class_embed_dim`` > 0 conditions on one pooled vector of that width instead of token
    states (:meth:`with_class_width`), as AudioLDM: a linear projection of it is concatenated to
    the timestep embedding ("simple_projection") and the transformer blocks' second attention
    attends within the latent (their context width is each level's channels).
    """

    # added after runs were first saved: left out of saved run settings at their defaults
    LATER_FIELDS: ClassVar[frozenset[str]] = frozenset({"class_embed_dim"})

    block_out_channels: tuple[int, ...] = (320, 640)
    layers_per_block: int = 2
    cross_attn_levels: tuple[bool, ...] = (True, True)
    num_heads: int = 8
    transformer_layers: int = 1
    cross_attention_dim: int = 0
    in_channels: int = 4
    out_channels: int = 4
    norm_num_groups: int = 32
    crop_seconds: float = 10.0  # default training crop for this preset
    class_embed_dim: int = 0  # > 0: conditioned on one pooled vector of this width

    def with_text_width(self, width: int) -> UNetConfig:
        return replace(self, cross_attention_dim=int(width))

    def with_class_width(self, width: int) -> UNetConfig:
        """Conditioned through the class embedding on ``width``-wide pooled vectors."""
        return replace(self, class_embed_dim=int(width), cross_attention_dim=0)

    def with_latent_channels(self, channels: int) -> UNetConfig:
        return replace(self, in_channels=int(channels), out_channels=int(channels))

    def diffusers_kwargs(self) -> dict[str, Any]:
        """The ``UNet2DConditionModel`` constructor arguments for this config."""
        if self.cross_attention_dim <= 0 and self.class_embed_dim <= 0:
            raise MaaError("U-Net config has no cross_attention_dim; set it from the text encoder")
        if len(self.cross_attn_levels) != len(self.block_out_channels):
            raise MaaError("U-Net config: cross_attn_levels needs one flag per channel level")
        down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in self.cross_attn_levels)
        up = tuple(
            "CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(self.cross_attn_levels)
        )
        return {
            "sample_size": None,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "down_block_types": down,
            "up_block_types": up,
            "mid_block_type": "UNetMidBlock2DCrossAttn",
            "block_out_channels": self.block_out_channels,
            "layers_per_block": self.layers_per_block,
            "norm_num_groups": self.norm_num_groups,
            "cross_attention_dim": self.cross_attention_dim,
            # diffusers' historical naming: attention_head_dim is the number of heads here
            "attention_head_dim": self.num_heads,
            "transformer_layers_per_block": self.transformer_layers,
            **(self._class_kwargs() if self.class_embed_dim > 0 else {}),
        }

    def _class_kwargs(self) -> dict[str, Any]:
        return {
            "cross_attention_dim": self.block_out_channels,  # no context: attends within x
            "class_embed_type": "simple_projection",
            "projection_class_embeddings_input_dim": self.class_embed_dim,
            "class_embeddings_concat": True,
        }


UNET_PRESETS: dict[str, UNetConfig] = {
    "paper": UNetConfig(),
    # 4.6 M parameters (18.6 MB): the shipped bundle, trained in under an hour on a 2-core CPU
    "default": UNetConfig(
        block_out_channels=(64, 128), layers_per_block=1, num_heads=4, crop_seconds=5.0
    ),
    "tiny": UNetConfig(
        block_out_channels=(16, 32),
        layers_per_block=1,
        num_heads=2,
        norm_num_groups=8,
        crop_seconds=1.0,
    ),
}


def get_unet_config(preset: str) -> UNetConfig:
    return choose(UNET_PRESETS, preset, "U-Net preset")


def build_unet(cfg: UNetConfig) -> UNet2DConditionModel:
    """Factory: a randomly initialised denoiser for ``cfg``."""
    return UNet2DConditionModel(**cfg.diffusers_kwargs())


DIFFUSERS_UNET = "diffusers-unet"  # bundle kind: an imported U-Net with its own diffusers config


def build_unet_for(kind: str, config: dict[str, Any]) -> UNet2DConditionModel:
    """Factory for a bundle's ``unet`` entry: kind ``unet`` (a :class:`UNetConfig`) or
    ``diffusers-unet`` (the ``UNet2DConditionModel`` config of an imported model)."""
    if kind == DIFFUSERS_UNET:
        return UNet2DConditionModel.from_config(config)
    return build_unet(UNetConfig.from_dict(config))


def takes_class_labels(unet) -> bool:
    """True for a U-Net conditioned by one projected vector through its class embedding
    (AudioLDM: the L2-normalised CLAP text embedding as ``class_labels``, no cross-attention
    context) rather than by token states through cross-attention."""
    return getattr(unet.config, "class_embed_type", None) in ("projection", "simple_projection")


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class NoiseSchedule(Config):
    """The training noise schedule and prediction target (stored in the bundle)."""

    # added after runs were first saved: left out of saved run settings at their defaults
    LATER_FIELDS: ClassVar[frozenset[str]] = frozenset({"ddim_timesteps"})

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "epsilon"
    # DDIM's timesteps: "trailing" as every other sampler, or "compvis", those of the original
    # LDM DDIM sampler (leading spacing, steps_offset 1: 991, 981, …, 1 for 100 steps), which
    # models imported from CompVis-era releases record so `--sampler ddim` matches their script
    ddim_timesteps: str = "trailing"

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTIONS:
            raise MaaError(
                f"--prediction {self.prediction_type!r} is not one of {', '.join(PREDICTIONS)}"
            )
        if self.ddim_timesteps not in DDIM_TIMESTEPS:
            raise MaaError(
                f"noise schedule: ddim_timesteps {self.ddim_timesteps!r} is not one of "
                f"{', '.join(DDIM_TIMESTEPS)}"
            )

    def scheduler_config(self, sampler: str | None = None) -> dict[str, Any]:
        """A diffusers scheduler config every sampler accepts through ``from_config``
        (``sampler`` ``"ddim"`` gets the recorded DDIM timesteps)."""
        compvis = sampler == "ddim" and self.ddim_timesteps == "compvis"
        return {
            **{k: v for k, v in self.to_dict().items() if k != "ddim_timesteps"},
            "clip_sample": False,
            "set_alpha_to_one": False,
            # "trailing" starts every sampler at t = 999, so DDIM, DPM-Solver++, UniPC … all
            # approach the same ODE solution; with "leading" a 25-step sampler starts at t = 961
            # and lands 10x further from DDIM-100 (measured, see README)
            "steps_offset": 1 if compvis else 0,
            "timestep_spacing": "leading" if compvis else "trailing",
        }

    def ddpm(self):
        """The training-time ``DDPMScheduler`` (adds noise, gives v targets)."""
        return DDPMScheduler.from_config(self.scheduler_config())
