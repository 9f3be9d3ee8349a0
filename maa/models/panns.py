"""PANNs Cnn14 at 16 kHz: the backbone of FD, KL and IS in audioldm_eval and the papers.

Our own module whose ``state_dict`` has exactly the keys and shapes of the official checkpoint
``Cnn14_16k_mAP=0.438.pth`` (Kong et al., "PANNs", 2020; zenodo record 3987831), so that file
loads with strict key matching. The front end reproduces torchlibrosa's: a Hann-windowed DFT
written as two ``Conv1d`` (``spectrogram_extractor.stft.conv_real/conv_imag``), power
spectrum, a Slaney mel matrix (``logmel_extractor.melW``, 512-point FFT, 64 bands, 50–8000 Hz)
and ``10·log10(max(mel, 1e-10))``. Then ``bn0`` over mel bins, six conv blocks
(3×3 conv → BN → ReLU, twice, then 2×2 average pooling; none after the sixth), mean over
frequency, max + mean over time, ``fc1`` + ReLU (the "2048" embedding) and ``fc_audioset``
(527 AudioSet logits before the sigmoid).

Presets: ``cnn14_16k`` (the official model) and ``tiny`` (same layout, narrow, for tests).
"""

from __future__ import annotations

import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from maa.config import Config
from maa.dsp import mel_filterbank
from maa.errors import BundleError, MaaError, choose

PANNS_FILE = "Cnn14_16k_mAP=0.438.pth"
PANNS_URL = "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth"


@dataclass(frozen=True)
class PannsConfig(Config):
    """Cnn14 hyper-parameters. Audio is ``sample_rate`` Hz; STFT sizes in samples."""

    sample_rate: int = 16000
    window_size: int = 512
    hop_size: int = 160
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    classes_num: int = 527
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    # audioldm_eval zero-pads clips shorter than 2 s (32 000 samples at 16 kHz) at the end
    min_seconds: float = 2.0

    @property
    def embedding_dim(self) -> int:
        return self.channels[-1]

    @property
    def min_samples(self) -> int:
        return round(self.min_seconds * self.sample_rate)


PANNS_PRESETS: dict[str, PannsConfig] = {
    "cnn14_16k": PannsConfig(),
    "tiny": PannsConfig(channels=(4, 8, 8, 16, 16, 32)),
}


def get_panns_config(name: str) -> PannsConfig:
    return choose(PANNS_PRESETS, name, "PANNs preset")


class PannsOutput(NamedTuple):
    """``embedding``: ``(B, 2048)`` after fc1 + ReLU; ``logits``: ``(B, 527)`` before sigmoid."""

    embedding: torch.Tensor
    logits: torch.Tensor


class _PowerSpectrogram(nn.Module):
    """Centred (reflect-padded) STFT power as two strided convolutions with DFT kernels."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        bins = n_fft // 2 + 1
        self.stft = nn.ModuleDict()  # torchlibrosa's layout: stft.conv_real, stft.conv_imag
        for part in ("conv_real", "conv_imag"):
            self.stft[part] = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        # kernel[k, 0, n] = window[n] · exp(-2πi·n·k / N), split into real and imaginary parts;
        # float64 angles so the kernels equal the reference's numpy-built ones to float32 ulp
        with torch.device("cpu"):  # constants, also when the module is built on "meta"
            n = torch.arange(n_fft, dtype=torch.float64)
            k = torch.arange(bins, dtype=torch.float64)
            angle = 2 * math.pi * torch.outer(k, n) / n_fft
            window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        with torch.no_grad():
            self.stft.conv_real.weight.copy_((torch.cos(angle) * window)[:, None, :].float())
            self.stft.conv_imag.weight.copy_((-torch.sin(angle) * window)[:, None, :].float())
        self.requires_grad_(False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` → power spectrogram ``(B, frames, bins)`` with ``frames = T // hop + 1``."""
        x = F.pad(wave[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real, imag = self.stft.conv_real(x), self.stft.conv_imag(x)
        return (real.square() + imag.square()).transpose(1, 2)


class _LogMel(nn.Module):
    def __init__(self, cfg: PannsConfig) -> None:
        super().__init__()
        # librosa's default filters (Slaney scale, Slaney area norm), as the PANNs front end
        mel = mel_filterbank(
            cfg.window_size // 2 + 1, cfg.sample_rate, cfg.mel_bins, cfg.fmin, cfg.fmax
        )
        self.melW = nn.Parameter(mel, requires_grad=False)  # (bins, mel_bins)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        """``(B, frames, bins)`` power → ``(B, frames, mel_bins)`` dB (ref 1.0, amin 1e-10)."""
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)
        nn.init.xavier_uniform_(self.conv1.weight)
        nn.init.xavier_uniform_(self.conv2.weight)

    def forward(self, x: torch.Tensor, pool: bool) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, 2) if pool else x


class Cnn14(nn.Module):
    """PANNs Cnn14 (inference). ``forward(wave (B, T) at cfg.sample_rate) -> PannsOutput``."""

    def __init__(self, cfg: PannsConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or PannsConfig()
        self.spectrogram_extractor = _PowerSpectrogram(cfg.window_size, cfg.hop_size)
        self.logmel_extractor = _LogMel(cfg)
        self.bn0 = nn.BatchNorm2d(cfg.mel_bins)
        widths = (1, *cfg.channels)
        for i in range(len(cfg.channels)):
            self.add_module(f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(cfg.embedding_dim, cfg.embedding_dim)
        self.fc_audioset = nn.Linear(cfg.embedding_dim, cfg.classes_num)
        for fc in (self.fc1, self.fc_audioset):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    def forward(self, wave: torch.Tensor) -> PannsOutput:
        """``wave`` ``(B, T)`` float at ``cfg.sample_rate`` Hz, ``T`` > window/2 samples."""
        if wave.dim() != 2:
            raise MaaError(f"Cnn14 expects a (batch, samples) waveform, got {tuple(wave.shape)}")
        if wave.shape[-1] <= self.cfg.window_size // 2:
            raise MaaError(
                f"Cnn14 needs more than {self.cfg.window_size // 2} samples per clip, got "
                f"{wave.shape[-1]}; pad short clips first"
            )
        x = self.logmel_extractor(self.spectrogram_extractor(wave))  # (B, frames, mels)
        # bn0 normalises each mel bin: put mels on the channel axis
        x = self.bn0(x.transpose(1, 2)[..., None]).squeeze(-1).transpose(1, 2)[:, None]
        blocks = [m for name, m in self.named_children() if name.startswith("conv_block")]
        for i, block in enumerate(blocks):
            x = block(x, pool=i < len(blocks) - 1)
        x = x.mean(dim=3)  # (B, C, frames'): average over frequency
        x = x.amax(dim=2) + x.mean(dim=2)  # max + mean over time
        embedding = F.relu(self.fc1(x))
        return PannsOutput(embedding, self.fc_audioset(embedding))


def build_panns(cfg: PannsConfig | str = "cnn14_16k") -> Cnn14:
    """A Cnn14 at random weights (eval mode) from a config or a preset name."""
    if isinstance(cfg, str):
        cfg = get_panns_config(cfg)
    return Cnn14(cfg).eval()


def load_panns(path: str | os.PathLike[str] | None, cfg: PannsConfig | str = "cnn14_16k") -> Cnn14:
    """Build Cnn14 and load ``path`` (the official ``.pth`` or a safetensors copy) strictly."""
    if path is None or str(path) == "":
        raise MaaError(
            "FD, KL and IS need the PANNs Cnn14 16 kHz checkpoint: download "
            f"{PANNS_FILE} ({PANNS_URL}) and pass --embedder panns:/path/to/{PANNS_FILE} "
            "(or --embedder clap:BUNDLE to use the toolkit's CLAP audio encoder for FD)"
        )
    # built on the meta device: random initialisation of 80 M weights that are overwritten
    # right away would cost seconds; every tensor of Cnn14 is in its state dict
    with torch.device("meta"):
        model = build_panns(cfg)
    model = model.to_empty(device="cpu")
    hint = f"pass the official PANNs Cnn14 16 kHz file {PANNS_FILE} with --embedder panns:PATH"
    load_strict_file(model, path, hint)
    return model


def load_strict_file(module: nn.Module, path: str | os.PathLike[str], hint: str) -> None:
    """Load ``path`` into ``module`` with strict key and shape matching; errors name the keys.

    ``.safetensors`` files are read as such, others (``.pth``/``.pt``) with
    ``torch.load(weights_only=True)``. A PANNs training checkpoint ``{"model": state, …}``
    yields its ``model`` entry. NumPy arrays inside (the official files keep sampler state) are
    allowed; no code runs.
    """
    from maa.bundle import load_strict

    path = Path(path).expanduser()
    if not path.is_file():
        raise MaaError(f"{path}: no such checkpoint file; {hint}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise MaaError(f"{path}: not a readable safetensors file ({exc}); {hint}") from exc
    else:
        try:
            # the released PANNs files pickle NumPy arrays next to the weights: allow exactly
            # the NumPy reconstruction helpers (still weights_only: no arbitrary code runs)
            with torch.serialization.safe_globals(_numpy_globals()):
                state = torch.load(str(path), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
            raise MaaError(f"{path}: not a readable PyTorch checkpoint ({exc}); {hint}") from exc
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        if not isinstance(state, dict) or any(not torch.is_tensor(v) for v in state.values()):
            raise MaaError(f"{path}: does not hold a state dict of tensors; {hint}")
    try:
        load_strict(module, dict(state), str(path))
    except BundleError as exc:
        raise MaaError(f"{exc} {hint[0].upper()}{hint[1:]}.") from None


def _numpy_globals() -> list[Any]:
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    dtypes = [type(np.dtype(t)) for t in ("f4", "f8", "i4", "i8", "u1", "b1", "i2", "u8")]
    return [np.ndarray, np.dtype, _reconstruct, scalar, *dtypes]
