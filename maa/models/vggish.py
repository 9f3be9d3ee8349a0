"""VGGish, the backbone of FAD: 128-d embeddings per 0.96 s frame of 16 kHz audio.

Our own module whose ``state_dict`` has exactly the keys and shapes of the widely used PyTorch
port's checkpoint (harritaylor/torchvggish ``vggish-10086976.pth``: ``features.*`` for the
VGG convolutions, ``embeddings.*`` for the three fully connected layers), so that file loads
with strict key matching. As in audioldm_eval's FAD, PCA/quantisation is off and the ReLU after
the last layer is removed (``embeddings`` keeps indices 0, 2, 4).

Front end (Hershey et al. 2017, ``mel_features.py`` in the reference): 25 ms periodic-Hann
frames every 10 ms, 512-point FFT magnitude, 64 HTK-mel bands 125–7500 Hz (DC bin zeroed),
``log(mel + 0.01)``, then non-overlapping 96-frame examples; incomplete frames and examples at
the end are dropped, as in the reference.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import nn

from maa.config import Config
from maa.errors import MaaError, choose

VGGISH_FILE = "vggish-10086976.pth"
VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"


@dataclass(frozen=True)
class VggishConfig(Config):
    """VGGish front end (seconds, Hz) and network widths."""

    sample_rate: int = 16000
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    n_mels: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    log_offset: float = 0.01
    example_frames: int = 96  # 0.96 s
    channels: tuple[int, ...] = (64, 128, 256, 256, 512, 512)
    hidden: int = 4096
    embedding_dim: int = 128

    @property
    def window_length(self) -> int:
        return round(self.sample_rate * self.window_seconds)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_seconds)

    @property
    def n_fft(self) -> int:
        return 2 ** math.ceil(math.log2(self.window_length))

    @property
    def min_samples(self) -> int:
        """Shortest input that yields one example (15 600 samples = 0.975 s at 16 kHz)."""
        return self.window_length + (self.example_frames - 1) * self.hop_length


VGGISH_PRESETS: dict[str, VggishConfig] = {
    "vggish": VggishConfig(),
    "tiny": VggishConfig(channels=(4, 8, 8, 8, 16, 16), hidden=32),
}

# Convolutions per VGG stage (each stage ends in 2×2 max pooling): 1, 1, 2, 2 → 6 widths.
_STAGES = (1, 1, 2, 2)


def get_vggish_config(name: str) -> VggishConfig:
    return choose(VGGISH_PRESETS, name, "VGGish preset")


def htk_mel_matrix(cfg: VggishConfig) -> torch.Tensor:
    """``(n_fft/2+1, n_mels)`` float64 triangular weights, linear in HTK mel, DC row zero."""
    bins = cfg.n_fft // 2 + 1

    def to_mel(hz: torch.Tensor) -> torch.Tensor:
        return 1127.0 * torch.log1p(hz / 700.0)

    bin_mel = to_mel(torch.linspace(0.0, cfg.sample_rate / 2, bins, dtype=torch.float64))
    lo, hi = to_mel(torch.tensor([cfg.fmin, cfg.fmax], dtype=torch.float64))
    edges = torch.linspace(float(lo), float(hi), cfg.n_mels + 2, dtype=torch.float64)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel[:, None] - left) / (centre - left)
    falling = (right - bin_mel[:, None]) / (right - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights[0] = 0.0
    return weights


class VggishFrontEnd(nn.Module):
    """``(B, T)`` waves at 16 kHz → ``(B, N, 96, 64)`` log-mel examples (no learned state)."""

    def __init__(self, cfg: VggishConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # float64 like the NumPy reference; non-persistent so state_dict stays the official one
        with torch.device("cpu"):
            window = torch.hann_window(cfg.window_length, periodic=True, dtype=torch.float64)
            mel = htk_mel_matrix(cfg)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel", mel, persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if wave.shape[-1] < cfg.min_samples:
            raise MaaError(
                f"VGGish needs at least {cfg.min_samples} samples "
                f"({cfg.min_samples / cfg.sample_rate:.3f} s) per clip, got {wave.shape[-1]}; "
                "pad short clips first"
            )
        frames = wave.to(torch.float64).unfold(-1, cfg.window_length, cfg.hop_length)
        spec = torch.fft.rfft(frames * self.window, n=cfg.n_fft).abs()  # (B, F, bins)
        logmel = torch.log(spec @ self.mel + cfg.log_offset)  # (B, F, mels)
        n = logmel.shape[1] // cfg.example_frames  # incomplete examples are dropped
        return logmel[:, : n * cfg.example_frames].unflatten(1, (n, cfg.example_frames)).float()


class Vggish(nn.Module):
    """VGGish without PCA and without the final ReLU.

    ``forward(examples (M, 1, 96, 64)) -> (M, 128)``; :meth:`embed` takes waves.
    """

    def __init__(self, cfg: VggishConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or VggishConfig()
        if len(cfg.channels) != sum(_STAGES):
            raise MaaError(f"VGGish needs {sum(_STAGES)} channel widths, got {cfg.channels}")
        layers: list[nn.Module] = []
        cin, widths = 1, iter(cfg.channels)
        for convs in _STAGES:
            for _ in range(convs):
                cout = next(widths)
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
                cin = cout
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        # after four poolings a 96×64 example is 6×4; flattened in (time, mel, channel) order
        # because the weights come from TensorFlow's NHWC layout
        flat = cin * (cfg.example_frames // 16) * (cfg.n_mels // 16)
        self.embeddings = nn.Sequential(
            nn.Linear(flat, cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, cfg.embedding_dim),
        )
        self.frontend = VggishFrontEnd(cfg)

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.features(examples)  # (M, C, 6, 4)
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.embeddings(x)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` waves at 16 kHz (equal lengths) → ``(B, N, 128)`` frame embeddings."""
        examples = self.frontend(wave)  # (B, N, 96, 64)
        return self.forward(examples.flatten(0, 1)[:, None]).unflatten(0, examples.shape[:2])


def build_vggish(cfg: VggishConfig | str = "vggish") -> Vggish:
    """VGGish at random weights (eval mode) from a config or preset name."""
    if isinstance(cfg, str):
        cfg = get_vggish_config(cfg)
    return Vggish(cfg).eval()


def load_vggish(path: str | os.PathLike[str] | None, cfg: VggishConfig | str = "vggish") -> Vggish:
    """Build VGGish and load ``path`` (torchvggish's ``.pth`` or safetensors) strictly."""
    from maa.models.panns import load_strict_file

    if path is None or str(path) == "":
        raise MaaError(
            f"FAD needs the VGGish checkpoint: download {VGGISH_FILE} ({VGGISH_URL}) and pass "
            f"--vggish /path/to/{VGGISH_FILE}"
        )
    # weights are built on the meta device (no wasted random init) and then loaded; the front
    # end's constant buffers are not in the state dict, so it is rebuilt for real
    with torch.device("meta"):
        model = build_vggish(cfg)
    model = model.to_empty(device="cpu")
    model.frontend = VggishFrontEnd(model.cfg)
    load_strict_file(model, path, f"pass torchvggish's {VGGISH_FILE} with --vggish PATH")
    return model
