"""Data for ``maa train-ldm``: encoding, the on-disk latent cache and the training items.

Every clip is encoded once — VAE posterior (mean, std) of the whole clip (up to
``max_cache_seconds``; shorter clips tiled or padded to one crop) and its caption's token
embeddings — and stored under a fingerprint of everything it depends on, so a stale cache is
never used. :class:`LatentDataset` draws each item's latent crop, posterior sample, caption
dropout, timestep and noise (and, to train
inpainting, a random mask) from :func:`~maa.trainer.item_generator`.

With ``condition="clap-audio"`` (AudioLDM's recipe) captions are not used: an item is conditioned
on the CLAP audio embedding of its crop. The cache holds each clip's embeddings of crop windows
every quarter crop (:func:`cond_windows`) and an item takes the window nearest its crop (the same
window when the clip fits one crop, as most do); fresh compositions are embedded on the fly.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from maa.audio import fix_length, random_crop
from maa.config import Config
from maa.data import AudioClips
from maa.fsutil import atomic_path, is_main_process
from maa.mel import MelPreset, MelSpectrogram, pad_frames
from maa.models.vae import SpectrogramVAE
from maa.text import TextEncoder
from maa.trainer import item_generator

log = logging.getLogger("maa.ldm")
CACHE_VERSION = 1


@dataclass(frozen=True)
class LDMConfig(Config):
    """Training settings of the LDM stage (saved with the run; must match on resume)."""

    # added after runs were first saved: left out of saved run settings at their defaults
    LATER_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"condition", "min_snr_gamma", "balance", "task"}
    )

    preset: str = "tiny"
    text_encoder: str = "minilm"
    crop_frames: int = 88  # mel frames per training crop (multiple of the VAE's downsampling)
    lr: float = 1e-3
    warmup: int = 10
    weight_decay: float = 1e-2
    caption_dropout: float = 0.1
    prediction: str = "epsilon"
    short: str = "tile"  # clips shorter than the crop: tile or pad
    max_cache_seconds: float = 30.0
    reprogram_prob: float = 0.0
    # min-SNR-γ loss weighting (Hang et al. 2023; 0: plain MSE) and category balancing of the
    # data order: each clip is drawn with weight (clips in its category)^-balance (0: natural
    # frequencies, 1: every category equally often)
    min_snr_gamma: float = 0.0
    balance: float = 0.0
    val_prompts: int = 3
    val_steps: int = 25
    # "text": the caption's encoding; "clap-audio": the CLAP audio embedding of the crop
    condition: str = "text"
    # "text-to-audio", or "inpaint": the U-Net also sees [masked latent, mask] (2z + 1 inputs)
    task: str = "text-to-audio"


# -- encoding ---------------------------------------------------------------------------------
@torch.no_grad()
def encode_waves(
    vae: SpectrogramVAE, melspec: MelSpectrogram, waves: torch.Tensor, mel: MelPreset
) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms ``(B, S)`` → VAE posterior ``(mean, std)``, each ``(B, z, n_mels/8, F/8)``.

    ``F`` = ``S // hop`` frames, padded with the silence floor to the VAE's multiple.
    """
    logmel = pad_frames(melspec(waves), vae.downsample, mel.floor)
    post = vae.encode(logmel.to(next(vae.parameters()).dtype))
    return post.mean.float(), post.std.float()


@dataclass
class LatentCache:
    """Per-clip posteriors and per-caption token embeddings (what an epoch reads)."""

    fingerprint: str
    mean: list[torch.Tensor]  # each (z, H, W_i)
    std: list[torch.Tensor]
    caption_ids: list[int]  # clip → index into tokens
    captions: list[str]
    tokens: list[torch.Tensor]  # each (L_j, D) float16
    uncond: torch.Tensor  # (L0, D) float16, the encoding of ""
    scale_factor: float
    # clap-audio: per clip (K_i, D) float16 CLAP audio embeddings of the crop windows at latent
    # offsets cond_windows(W_i, crop, cond_stride)
    audio_cond: list[torch.Tensor] | None = None
    cond_stride: int = 0


def fingerprint(
    vae_file: Path, encoder: TextEncoder, mel: MelPreset, clips: AudioClips, cfg: LDMConfig
) -> str:
    """Hash of everything the cache depends on: VAE weights, encoder, mel, audio, captions."""
    h = hashlib.sha256()
    h.update(f"v{CACHE_VERSION}".encode())
    with vae_file.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(f"{encoder.spec}|{encoder.width}|{encoder.max_length}".encode())
    h.update(repr(sorted(mel.to_dict().items())).encode())
    h.update(f"{cfg.crop_frames}|{cfg.short}|{cfg.max_cache_seconds}".encode())
    if cfg.condition != "text":  # (text: the fingerprint of every earlier cache, unchanged)
        h.update(f"{cfg.condition}|{COND_WINDOWS_PER_CROP}|{encoder.digest}".encode())
    for path, caption, wave in zip(clips.paths, clips.captions, clips.waves, strict=True):
        h.update(f"{path}\0{caption}\0{wave.numel()}\0".encode())
        h.update(wave.contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def build_cache(
    clips: AudioClips,
    vae: SpectrogramVAE,
    encoder: TextEncoder,
    mel: MelPreset,
    cfg: LDMConfig,
    fp: str,
    device: torch.device,
) -> LatentCache:
    """Encode every clip and unique caption once (clips tiled/padded to at least one crop)."""
    melspec = MelSpectrogram(mel).to(device)
    crop_samples = mel.samples_for(cfg.crop_frames)
    max_samples = max(crop_samples, int(cfg.max_cache_seconds * mel.sample_rate))
    means, stds, windows = [], [], []
    for wave in clips.waves:
        wave = wave[:max_samples]
        if wave.numel() < crop_samples:
            wave = fix_length(wave, crop_samples, mode=cfg.short)
        m, s = encode_waves(vae, melspec, wave.unsqueeze(0).to(device), mel)
        means.append(m[0].cpu())
        stds.append(s[0].cpu())
        if cfg.condition == "clap-audio":
            windows.append(_crop_windows(wave, m.shape[-1], vae.downsample, mel, cfg))
    audio_cond, stride = None, 0
    if cfg.condition == "clap-audio":
        stride = cond_stride(cfg.crop_frames // vae.downsample)
        audio_cond = [encoder.embed_audio(w, mel.sample_rate).half() for w in windows]
    captions = sorted(set(clips.captions)) if audio_cond is None else []
    index = {c: i for i, c in enumerate(captions)}
    tokens: list[torch.Tensor] = []
    for i in range(0, len(captions), 64):
        emb = encoder.encode(captions[i : i + 64])
        tokens += [row.half().cpu() for row in unpad_tokens(emb.tokens, emb.mask)]
    uncond = encoder.encode([""])
    uncond_tokens = unpad_tokens(uncond.tokens, uncond.mask)[0].half().cpu()
    # scale_factor = 1/std of posterior samples (the paper uses the first batch; all clips
    # give the same estimate with less variance), drawn with a fixed generator
    g = torch.Generator().manual_seed(0)
    samples = torch.cat([(m + s * torch.randn(m.shape, generator=g)).flatten() for m, s in
                         zip(means, stds, strict=True)])  # fmt: skip
    scale = 1.0 / max(float(samples.std()), 1e-6)
    caption_ids = [index[c] for c in clips.captions] if audio_cond is None else []
    return LatentCache(fp, means, stds, caption_ids, captions, tokens, uncond_tokens, scale,
                       audio_cond, stride)  # fmt: skip


COND_WINDOWS_PER_CROP = 4  # clap-audio: a cached window every quarter crop


def cond_stride(crop_latent: int) -> int:
    """Latent frames between the cached embedding windows of a ``crop_latent``-wide crop."""
    return max(1, crop_latent // COND_WINDOWS_PER_CROP)


def cond_windows(width: int, crop: int, stride: int) -> list[int]:
    """Latent offsets of the cached embedding windows of a clip ``width`` latent frames wide:
    every ``stride`` frames from 0, and the last crop position."""
    last = max(0, width - crop)
    return sorted({*range(0, last + 1, stride), last})


def nearest_window(offset: int, width: int, crop: int, stride: int) -> int:
    """Index of the cached window nearest the crop at latent ``offset``."""
    offsets = cond_windows(width, crop, stride)
    return min(range(len(offsets)), key=lambda k: abs(offsets[k] - offset))


def _crop_windows(
    wave: torch.Tensor, width: int, down: int, mel: MelPreset, cfg: LDMConfig
) -> list[torch.Tensor]:
    """The audio ``(crop samples,)`` of each cached window of one clip (as cached, tiled or
    padded to one crop at least); a window running past the end is padded with silence."""
    crop = cfg.crop_frames // down
    samples = mel.samples_for(cfg.crop_frames)
    per_latent = down * mel.hop_length
    offsets = cond_windows(width, crop, cond_stride(crop))
    return [fix_length(wave[o * per_latent : o * per_latent + samples], samples, mode="pad")
            for o in offsets]  # fmt: skip


def load_or_build_cache(cache_dir: Path, fp: str, build) -> tuple[LatentCache, bool]:
    """The cache file for ``fp`` if present, else ``build()`` written atomically (old ones go);
    in a multi-process run only rank 0 writes it (the others build the same cache in memory)."""
    path = cache_dir / f"latents-{fp}.pt"
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if state.get("version") == CACHE_VERSION and state.get("fingerprint") == fp:
                return LatentCache(**{k: v for k, v in state.items() if k != "version"}), True
        except (RuntimeError, OSError, EOFError) as exc:
            log.warning("ignoring unreadable latent cache %s (%s)", path, exc)
    cache = build()
    if not is_main_process():
        return cache, False
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob("latents-*.pt"):
        if old != path:
            old.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"version": CACHE_VERSION, **asdict(cache)}, tmp)
    return cache, False


def pad_tokens(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences ``[(L_i, D)]`` → padded ``(B, L, D)`` and mask ``(B, L)`` (1 = token)."""
    mask = pad_sequence([torch.ones(r.shape[0], dtype=torch.long) for r in rows], batch_first=True)
    return pad_sequence(rows, batch_first=True), mask


def unpad_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Inverse of :func:`pad_tokens`: ``(B, L, D)`` and mask ``(B, L)`` → ``[(L_i, D)]``."""
    return [row[m.bool()] for row, m in zip(tokens, mask, strict=True)]


# -- inpainting masks ------------------------------------------------------------------------
INPAINT_MASK_KINDS = (0.45, 0.45, 0.10)  # time span, time-frequency box, everything


def random_inpaint_mask(height: int, width: int, g: torch.Generator) -> torch.Tensor:
    """A random inpainting mask ``(1, height, width)`` on the latent grid (height: frequency,
    width: time), 1 where sound is generated: a time span (all frequencies), a time-frequency
    box, or (rarely) everything, so the model still generates from the prompt alone. Spans and
    boxes are 1 cell up to the whole axis wide, anywhere."""
    mask = torch.zeros(1, height, width)
    kind = int(torch.multinomial(torch.tensor(INPAINT_MASK_KINDS), 1, generator=g))
    if kind == 2:
        return mask.fill_(1.0)
    w = int(torch.randint(1, width + 1, (), generator=g))
    t0 = int(torch.randint(0, width - w + 1, (), generator=g))
    f0, h = 0, height
    if kind == 1:
        h = int(torch.randint(1, height + 1, (), generator=g))
        f0 = int(torch.randint(0, height - h + 1, (), generator=g))
    mask[:, f0 : f0 + h, t0 : t0 + w] = 1.0
    return mask


# -- data -------------------------------------------------------------------------------------
class LatentDataset(Dataset):
    """Training items from a :class:`LatentCache` (and optionally a reprogrammer).

    Item ``i`` in epoch ``e`` draws everything from ``item_generator(seed, e, i)``: latent crop,
    posterior noise, caption dropout, timestep, diffusion noise (and a composition).
    """

    def __init__(
        self,
        cache: LatentCache,
        clips: AudioClips,
        cfg: LDMConfig,
        mel: MelPreset,
        seed: int,
        num_timesteps: int,
        reprogrammer=None,
    ) -> None:
        self.cache, self.clips, self.cfg, self.mel = cache, clips, cfg, mel
        self.seed, self.num_timesteps = seed, num_timesteps
        self.reprogrammer = reprogrammer
        self.crop_latent = cfg.crop_frames // (mel.n_mels // cache.mean[0].shape[1])
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.cache.mean)

    @property
    def sample_weights(self) -> torch.Tensor | None:
        """Per-clip draw weights ``(count of its category)^-balance`` (None: a permutation)."""
        if not self.cfg.balance:
            return None
        cats = self.clips.categories
        counts: dict[str, int] = {}
        for c in cats:
            counts[c] = counts.get(c, 0) + 1
        return torch.tensor([counts[c] ** -self.cfg.balance for c in cats], dtype=torch.float64)

    def __getitem__(self, index: int) -> dict[str, Any]:
        g = item_generator(self.seed, self.epoch, index)
        mean, std = self.cache.mean[index], self.cache.std[index]
        shape = (*mean.shape[:2], self.crop_latent)
        item: dict[str, Any] = {"caption": None}
        cond = None  # clap-audio: the crop's cached CLAP audio embedding
        if self.reprogrammer is not None and float(torch.rand((), generator=g)) < (
            self.cfg.reprogram_prob
        ):
            comp = self.reprogrammer.sample(
                self.clips.waves[index], self.clips.captions[index], g, self.clips.paths[index]
            )
            crop = self.mel.samples_for(self.cfg.crop_frames)
            item["wave"] = random_crop(comp.wave, crop, g, mode=self.cfg.short)
            item["caption"] = comp.caption
            item["z"] = torch.zeros(shape)
        else:
            width = mean.shape[-1]
            off = int(torch.randint(0, width - shape[-1] + 1, (), generator=g))
            sl = slice(off, off + shape[-1])
            eps = torch.randn(shape, generator=g)
            item["z"] = (mean[..., sl] + std[..., sl] * eps) * self.cache.scale_factor
            if self.cache.audio_cond is not None:
                k = nearest_window(off, width, shape[-1], self.cache.cond_stride)
                cond = self.cache.audio_cond[index][k : k + 1]
        dropped = float(torch.rand((), generator=g)) < self.cfg.caption_dropout
        if dropped:
            item["caption"] = None
        if dropped or item["caption"] is not None:  # a composition's is encoded in the step
            item["tokens"] = self.cache.uncond
        elif cond is not None:
            item["tokens"] = cond
        else:
            item["tokens"] = self.cache.tokens[self.cache.caption_ids[index]]
        item["post_eps"] = torch.randn(shape, generator=g)
        item["t"] = torch.randint(0, self.num_timesteps, (), generator=g)
        item["noise"] = torch.randn(shape, generator=g)
        if self.cfg.task == "inpaint":  # drawn last: the other draws stay those of text-to-audio
            item["inpaint_mask"] = random_inpaint_mask(shape[1], shape[2], g)
        return item

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        tokens, mask = pad_tokens([it["tokens"] for it in items])
        batch = {
            "z": torch.stack([it["z"] for it in items]),
            "tokens": tokens,
            "mask": mask,
            "t": torch.stack([it["t"] for it in items]),
            "noise": torch.stack([it["noise"] for it in items]),
        }
        if self.cfg.task == "inpaint":
            batch["inpaint_mask"] = torch.stack([it["inpaint_mask"] for it in items])
        if self.reprogrammer is not None:
            crop = self.mel.samples_for(self.cfg.crop_frames)
            batch["composed"] = torch.tensor([it.get("wave") is not None for it in items])
            batch["wave"] = torch.stack([it.get("wave", torch.zeros(crop)) for it in items])
            batch["post_eps"] = torch.stack([it["post_eps"] for it in items])
            batch["captions"] = [it["caption"] for it in items]
        return batch
