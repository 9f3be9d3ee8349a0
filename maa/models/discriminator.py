"""The multi-window spectrogram discriminator of Make-An-Audio, and the VAE's GAN losses.

Each window discriminator looks at a random span of ``w`` frames over *all* mel bins
(``w`` ∈ {32, 64, 128} in the paper) through a small stride-2 conv stack and a linear head;
the per-window scores are summed. Short windows judge local texture, long ones rhythm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from maa.config import Config


@dataclass(frozen=True)
class DiscConfig(Config):
    n_mels: int = 80
    windows: tuple[int, ...] = (32, 64, 128)
    channels: int = 32
    layers: int = 4


class WindowDiscriminator(nn.Module):
    """Scores ``(B, n_mels, w)`` spans: conv stack (stride 2, LeakyReLU) + linear → ``(B,)``."""

    def __init__(self, n_mels: int, window: int, channels: int, layers: int) -> None:
        super().__init__()
        convs, c_in, h, w = [], 1, n_mels, window
        for i in range(layers):
            c_out = channels * 2 ** min(i, 3)
            convs += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in, h, w = c_out, (h + 1) // 2, (w + 1) // 2
        self.convs = nn.Sequential(*convs)
        self.head = nn.Linear(c_in * h * w, 1)

    def forward(self, span: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(span.unsqueeze(1)).flatten(1)).squeeze(1)


class MultiWindowDiscriminator(nn.Module):
    """Sum of :class:`WindowDiscriminator` scores over random windows of a log-mel batch."""

    def __init__(self, cfg: DiscConfig, pad_value: float) -> None:
        super().__init__()
        self.cfg, self.pad_value = cfg, pad_value
        self.discs = nn.ModuleList(
            WindowDiscriminator(cfg.n_mels, w, cfg.channels, cfg.layers) for w in cfg.windows
        )

    def forward(self, mel: torch.Tensor, starts: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``mel (B, n_mels, T)`` → summed logits ``(B,)``.

        ``starts`` (one ``(B,)`` tensor per window) fixes the spans; by default they are drawn
        from the global torch RNG. Clips shorter than a window are padded with silence.
        """
        if starts is None:
            starts = self.sample_starts(mel.shape[0], mel.shape[-1], mel.device)
        total = mel.new_zeros(mel.shape[0])
        for disc, w, s in zip(self.discs, self.cfg.windows, starts, strict=True):
            total = total + disc(self._spans(mel, w, s))
        return total

    def sample_starts(self, batch: int, frames: int, device: torch.device) -> list[torch.Tensor]:
        return [
            torch.randint(0, max(1, frames - w + 1), (batch,)).to(device) for w in self.cfg.windows
        ]

    def _spans(self, mel: torch.Tensor, w: int, start: torch.Tensor) -> torch.Tensor:
        if mel.shape[-1] < w:
            mel = F.pad(mel, (0, w - mel.shape[-1]), value=self.pad_value)
        idx = start.view(-1, 1) + torch.arange(w, device=mel.device).view(1, -1)  # (B, w)
        return torch.gather(mel, 2, idx.unsqueeze(1).expand(-1, mel.shape[1], -1))


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator: ½(E[relu(1 − D(x))] + E[relu(1 + D(x̂))])."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_weight(
    nll_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, scale: float
) -> torch.Tensor:
    """Balance the GAN term against reconstruction: ‖∇nll‖ / (‖∇g‖ + 1e-4) at the last layer.

    Clamped to [0, 1e4], detached, times ``scale`` (0.5 in the paper's config).
    """
    nll_grad = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = torch.linalg.vector_norm(nll_grad) / (torch.linalg.vector_norm(g_grad) + 1e-4)
    return weight.clamp(0.0, 1e4).detach() * scale
