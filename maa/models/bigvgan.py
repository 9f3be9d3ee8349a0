"""BigVGAN generator (Lee et al., ICLR 2023), the v1 layout Make-An-Audio's 16 kHz vocoder uses.

Log-mel ``(B, n_mels, T)`` → waveform ``(B, 1, T * hop)`` in [-1, 1]: a 7-tap input conv, then per
upsampling stage a transposed conv and the average of anti-aliased multi-periodicity (AMP)
blocks, one per kernel size; a final anti-aliased activation, a 7-tap conv and tanh.

AMP blocks use the periodic *snake* activation ``x + 1/β · sin²(α x)`` (``snakebeta``; ``snake``
has β = α), with α and β stored as logarithms when ``snake_logscale``. Each activation runs at
twice the sample rate: upsample ×2 with a Kaiser-windowed sinc low-pass, activate, low-pass and
decimate ×2 (the filters are buffers of 12 taps, cut-off at a quarter of the doubled rate).

Module and parameter names are those of the official checkpoints (``conv_pre``, ``ups.i.0``,
``resblocks.k.convs1.j``, ``….activations.j.act.alpha``, ``….upsample.filter``,
``….downsample.lowpass.filter``, ``activation_post``, ``conv_post``), with weight norm folded
into plain ``weight`` tensors (:func:`fold_official_weight_norm`), so a ``best_netG.pt``
``generator`` state dict loads after that one step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from maa.config import Config
from maa.errors import MaaError

ACTIVATIONS = ("snake", "snakebeta")
# samples each side one anti-aliased activation reaches: 6 taps of its ×2 up and down filters
ANTI_ALIAS_REACH = 6


@dataclass(frozen=True)
class BigVGANConfig(Config):
    """Generator sizes (the names of BigVGAN's ``args.yml``); defaults: Make-An-Audio's 16 kHz
    vocoder (``upsample_rates`` multiply to the ``paper`` mel hop, 256)."""

    num_mels: int = 80
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock: str = "1"  # "1": AMP blocks of 2 × 3 convs; "2": of 2 convs
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"
    snake_logscale: bool = True

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)

    def validate(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise MaaError(f"BigVGAN activation {self.activation!r} is not one of {ACTIVATIONS}")
        if self.resblock not in ("1", "2"):
            raise MaaError(f"BigVGAN resblock {self.resblock!r} is not '1' or '2'")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise MaaError("BigVGAN config: upsample_rates and upsample_kernel_sizes differ")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise MaaError("BigVGAN config: resblock kernel and dilation lists differ in length")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise MaaError(
                "BigVGAN config: upsample_initial_channel must halve evenly at every stage"
            )

    def context_frames(self) -> int:
        """Mel frames on each side that reach one output sample (the receptive field), plus a
        margin: the context a chunk needs so that chunked vocoding equals one long pass."""
        frames, rate = 3.0, 1  # conv_pre: 3 frames each side
        acts = 2 if self.resblock == "1" else 1  # activations per dilation
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes, strict=True):
            frames += k / u / rate  # the transposed conv, counted in its input samples
            rate *= u
            reach = max(
                sum((kernel - 1) * d // 2 + (kernel - 1) // 2 * (acts - 1) for d in dils)
                + ANTI_ALIAS_REACH * acts * len(dils)
                for kernel, dils in zip(
                    self.resblock_kernel_sizes, self.resblock_dilation_sizes, strict=True
                )
            )
            frames += reach / rate
        frames += (ANTI_ALIAS_REACH + 3) / rate  # activation_post and conv_post
        return math.ceil(frames) + 4


def kaiser_lowpass(cutoff: float, half_width: float, taps: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass ``(1, 1, taps)`` with unit DC gain; ``cutoff`` and
    ``half_width`` (transition half-width) as fractions of the sample rate."""
    half = taps // 2
    # Kaiser's design rule: stop-band attenuation (dB) from the transition width → window β
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21.0) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, periodic=False, beta=beta)
    # sample positions centred on the filter (half-integers for an even tap count)
    t = torch.arange(taps) - half + (0.5 if taps % 2 == 0 else 0.0)
    h = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (h / h.sum()).view(1, 1, taps)


class UpSample1d(nn.Module):
    """×``ratio`` upsampling: zero-stuffing through a transposed conv with the low-pass."""

    def __init__(self, ratio: int = 2, taps: int = 12) -> None:
        super().__init__()
        self.ratio, self.taps = ratio, taps
        self.pad = taps // ratio - 1
        self.crop_left = self.pad * ratio + (taps - ratio) // 2
        self.crop_right = self.pad * ratio + (taps - ratio + 1) // 2
        self.register_buffer("filter", kaiser_lowpass(0.5 / ratio, 0.6 / ratio, taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        kernel = self.filter.expand(channels, -1, -1)
        x = self.ratio * F.conv_transpose1d(x, kernel, stride=self.ratio, groups=channels)
        return x[..., self.crop_left : x.shape[-1] - self.crop_right]


class LowPassFilter1d(nn.Module):
    """Low-pass with replicate padding, keeping every ``stride``-th sample."""

    def __init__(self, cutoff: float, half_width: float, stride: int, taps: int = 12) -> None:
        super().__init__()
        self.stride = stride
        self.pad_left, self.pad_right = taps // 2 - (1 - taps % 2), taps // 2
        self.register_buffer("filter", kaiser_lowpass(cutoff, half_width, taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(
            x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels
        )


class DownSample1d(nn.Module):
    def __init__(self, ratio: int = 2, taps: int = 12) -> None:
        super().__init__()
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, ratio, taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Snake(nn.Module):
    """``x + 1/β · sin²(α x)`` per channel; β = α for plain snake; log-scale parameters."""

    def __init__(self, channels: int, with_beta: bool, logscale: bool) -> None:
        super().__init__()
        self.logscale = logscale
        init = torch.zeros(channels) if logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone()) if with_beta else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.view(1, -1, 1)
        beta = alpha if self.beta is None else self.beta.view(1, -1, 1)
        if self.logscale:
            alpha, beta = alpha.exp(), beta.exp()
        return x + torch.sin(x * alpha).pow(2) / (beta + 1e-9)


class Activation1d(nn.Module):
    """Anti-aliased activation: ×2 up, snake, ×2 down."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act
        self.upsample = UpSample1d(2, 12)
        self.downsample = DownSample1d(2, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def _conv(channels: int, kernel: int, dilation: int) -> nn.Conv1d:
    return nn.Conv1d(
        channels, channels, kernel, dilation=dilation, padding=(kernel - 1) * dilation // 2
    )


class AMPBlock(nn.Module):
    """Residual stack, per dilation: act → dilated conv → act → conv ("1", convs1/convs2) or
    act → dilated conv ("2", convs), each added to its input."""

    def __init__(self, cfg: BigVGANConfig, channels: int, kernel: int, dilations) -> None:
        super().__init__()
        self.kind = cfg.resblock
        if self.kind == "1":
            self.convs1 = nn.ModuleList(_conv(channels, kernel, d) for d in dilations)
            self.convs2 = nn.ModuleList(_conv(channels, kernel, 1) for _ in dilations)
        else:
            self.convs = nn.ModuleList(_conv(channels, kernel, d) for d in dilations)
        n_acts = len(dilations) * (2 if self.kind == "1" else 1)
        beta = cfg.activation == "snakebeta"
        self.activations = nn.ModuleList(
            Activation1d(Snake(channels, beta, cfg.snake_logscale)) for _ in range(n_acts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "2":
            for conv, act in zip(self.convs, self.activations, strict=True):
                x = x + conv(act(x))
            return x
        first, second = self.activations[::2], self.activations[1::2]
        for c1, a1, c2, a2 in zip(self.convs1, first, self.convs2, second, strict=True):
            x = x + c2(a2(c1(a1(x))))
        return x


class BigVGAN(nn.Module):
    """The generator; ``forward`` maps ``(B, n_mels, T)`` to ``(B, 1, T * hop)``."""

    def __init__(self, cfg: BigVGANConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        ch = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True):
            up = nn.ConvTranspose1d(ch, ch // 2, k, u, padding=(k - u) // 2)
            self.ups.append(nn.ModuleList([up]))
            ch //= 2
            for kernel, dilations in zip(
                cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True
            ):
                self.resblocks.append(AMPBlock(cfg, ch, kernel, dilations))
        beta = cfg.activation == "snakebeta"
        self.activation_post = Activation1d(Snake(ch, beta, cfg.snake_logscale))
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        n = len(self.cfg.resblock_kernel_sizes)
        for i, (up,) in enumerate(self.ups):
            x = up(x)
            blocks = self.resblocks[i * n : (i + 1) * n]
            x = sum(block(x) for block in blocks) / n
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x)


def build_bigvgan(cfg: BigVGANConfig) -> BigVGAN:
    """Factory: a randomly initialised generator for ``cfg``."""
    return BigVGAN(cfg)


def fold_official_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weight-normed convs of a training checkpoint as plain ``weight`` tensors.

    Accepts both layouts torch has written: ``X.weight_g`` / ``X.weight_v`` (``nn.utils.
    weight_norm``) and ``X.parametrizations.weight.original0`` / ``original1``. The weight is
    ``g · v / ‖v‖`` with the norm over every axis but the first (torch's default ``dim=0``).
    """
    out: dict[str, torch.Tensor] = {}
    pairs = {
        ".weight_g": ".weight_v",
        ".parametrizations.weight.original0": ".parametrizations.weight.original1",
    }
    skip = {k for k in state for v in pairs.values() if k.endswith(v)}
    for key, value in state.items():
        if key in skip:
            continue
        for g_suffix, v_suffix in pairs.items():
            if key.endswith(g_suffix):
                stem = key[: -len(g_suffix)]
                v = state.get(stem + v_suffix)
                if v is None:
                    raise MaaError(f"weight-norm magnitude {key} has no direction {v_suffix}")
                norm = v.float().flatten(1).norm(dim=1).view(-1, *[1] * (v.dim() - 1))
                out[stem + ".weight"] = (value.float() * v.float() / norm).to(v.dtype)
                break
        else:
            out[key] = value
    return out
