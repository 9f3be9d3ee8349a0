"""Training data from manifests: decoded clips and deterministic random crops."""

from __future__ import annotations

import logging

import pandas as pd
import torch
from torch.utils.data import Dataset

from maa.audio import load_audio, random_crop
from maa.errors import AudioError, MaaError
from maa.manifest import audio_paths, select_split
from maa.trainer import item_generator

log = logging.getLogger("maa.data")


class AudioClips:
    """The usable clips of a manifest split, decoded at ``sample_rate`` and kept in memory.

    Files that cannot be used (missing, corrupt, NaN, silent, shorter than ``min_seconds``)
    are recorded in :attr:`failures` as ``(path, reason)`` instead of stopping the run.
    Clips are decoded once up front: a training step must never wait on a decoder, and
    unusable files are found before step 1, not at step 40,000.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        sample_rate: int,
        split: str | None = "train",
        min_seconds: float = 0.05,
        allow_silent: bool = False,
    ) -> None:
        if split is not None and split not in set(df["split"]):
            split = None  # a manifest without that split trains on all rows
        df = select_split(df, split)
        self.sample_rate = sample_rate
        self.waves: list[torch.Tensor] = []
        self.captions: list[str] = []
        self.paths: list[str] = []
        # the manifest's ``category`` per usable clip ("" where it has none): for balancing
        self.categories: list[str] = []
        self.failures: list[tuple[str, str]] = []
        cats = df["category"].fillna("") if "category" in df.columns else [""] * len(df)
        for path, caption, cat in zip(audio_paths(df), df["caption"], cats, strict=True):
            try:
                wave, _ = load_audio(path, sample_rate, allow_silent=allow_silent)
            except AudioError as exc:
                self.failures.append((str(path), str(exc)))
                continue
            if wave.numel() < min_seconds * sample_rate:
                seconds = wave.numel() / sample_rate
                reason = f"clip is {seconds:.3f} s long, shorter than the {min_seconds} s minimum"
                self.failures.append((str(path), f"{path}: {reason}"))
                continue
            self.waves.append(wave)
            self.captions.append(str(caption))
            self.paths.append(str(path))
            self.categories.append(str(cat))
        for _path, reason in self.failures:
            log.warning("skipping %s", reason)
        if not self.waves:
            first = self.failures[0][1] if self.failures else "the manifest has no rows"
            raise MaaError(
                f"no usable training clips ({len(self.failures)} skipped; first: {first})"
            )

    def __len__(self) -> int:
        return len(self.waves)


class CropDataset(Dataset):
    """Fixed-length random crops ``(crop_samples,)`` of :class:`AudioClips`.

    The crop of item ``i`` in epoch ``e`` depends only on ``(seed, e, i)``; clips shorter than
    the crop are repeated (``short="tile"``) or padded with silence (``"pad"``).
    """

    def __init__(self, clips: AudioClips, crop_samples: int, seed: int, short: str = "tile"):
        if short not in ("tile", "pad"):
            raise MaaError(f"unknown short-clip mode {short!r}; use tile or pad")
        self.clips, self.crop_samples, self.seed, self.short = clips, crop_samples, seed, short
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        g = item_generator(self.seed, self.epoch, index)
        return random_crop(self.clips.waves[index], self.crop_samples, g, mode=self.short)
