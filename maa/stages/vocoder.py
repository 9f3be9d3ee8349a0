"""Stage: the vocoder (``maa vocode``, ``maa train-vocoder``).

``vocode`` resynthesises a wav (or vocodes an ``.npy`` log-mel) through a vocoder and reports
the log-mel L1 between input and output. ``train_vocoder`` trains or fine-tunes HiFi-GAN with
the shared trainer: generator (``SpeechT5HifiGan`` with weight norm), multi-period and
multi-scale discriminators, LSGAN + feature matching (×2) + mel L1 (×45), AdamW(0.8, 0.99) with
exponential LR decay, random segment crops. The exported generator (weight norm folded) is the
``vocoder`` component of the bundle folder.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from maa.audio import load_audio, require_length, write_audio
from maa.bundle import Bundle, load_strict
from maa.config import Config
from maa.data import AudioClips, CropDataset
from maa.errors import MaaError
from maa.manifest import read_manifest
from maa.mel import MelPreset, MelSpectrogram, get_mel_preset
from maa.models.hifigan import (
    Discriminators,
    HiFiGANConfig,
    add_weight_norm,
    build_generator,
    discriminator_loss,
    feature_loss,
    folded_state_dict,
    generator_adv_loss,
    get_hifigan_config,
    load_universal,
)
from maa.trainer import StepContext, TrainConfig, TrainSummary, lr_exponential, train
from maa.vocoder import load_vocoder


# -- vocode -----------------------------------------------------------------------------------
def vocode(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    vocoder_spec: str = "default",
    mel: str | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
) -> dict[str, Any]:
    """Resynthesise ``in_path`` (audio file, or ``.npy`` log-mel ``(n_mels, T)``) to ``out_path``.

    The mel preset is ``mel`` if given, else the vocoder bundle's, else ``default``. Returns the
    mean absolute log-mel difference between input and output (``logmel_l1``), the audio length
    in seconds and the vocoder's speed in × real time.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    preset = _preset_for(vocoder_spec, mel)
    voc = load_vocoder(vocoder_spec, preset, device, dtype=dtype)
    mel_fn = MelSpectrogram(preset)
    if in_path.suffix.lower() == ".npy":
        if not in_path.is_file():
            raise MaaError(f"{in_path}: no such file")
        try:
            array = np.load(in_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise MaaError(f"{in_path}: not a readable .npy array ({exc})") from exc
        logmel = torch.from_numpy(np.asarray(array, dtype=np.float32))
        if logmel.dim() == 3 and logmel.shape[0] == 1:
            logmel = logmel[0]
        if logmel.dim() != 2:
            raise MaaError(
                f"{in_path}: expected a log-mel of shape ({preset.n_mels}, frames), "
                f"got {tuple(logmel.shape)}"
            )
    else:
        wave, _ = load_audio(in_path, preset.sample_rate)
        require_length(wave, preset.sample_rate, preset.latent_frame_samples, str(in_path))
        logmel = mel_fn(wave)[0]
    t0 = time.perf_counter()
    out = voc(logmel)  # (T * hop,)
    elapsed = time.perf_counter() - t0
    write_audio(out_path, out, voc.sample_rate)
    resynth = mel_fn(out)[0]
    frames = min(resynth.shape[-1], logmel.shape[-1])
    ref = logmel[:, :frames].clamp_min(preset.floor)
    l1 = float((resynth[:, :frames] - ref).abs().mean())
    seconds = out.numel() / voc.sample_rate
    return {
        "in": str(in_path),
        "out": str(out_path),
        "vocoder": voc.name,
        "label": voc.label,
        "warning": voc.warning,
        "mel_preset": preset.name,
        "sample_rate": voc.sample_rate,
        "seconds": seconds,
        "frames": frames,
        "logmel_l1": l1,
        "x_real_time": seconds / max(elapsed, 1e-9),
    }


def _preset_for(vocoder_spec: str, mel: str | None) -> MelPreset:
    if mel is not None:
        return get_mel_preset(mel)
    if vocoder_spec not in ("default", "griffin-lim") and Path(vocoder_spec).is_dir():
        return Bundle.open(vocoder_spec).mel
    return get_mel_preset("default")


# -- training ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class VocoderTrainSettings(Config):
    """Optimiser and loss settings (HiFi-GAN V1 recipe)."""

    segment_frames: int = 32  # 8192 samples at hop 256
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    lr_decay: float = 0.999  # per `lr_decay_every` steps (HiFi-GAN: per LJSpeech epoch)
    lr_decay_every: int = 800
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    init: str | None = None  # "default": start from the universal generator


@dataclass(frozen=True, kw_only=True)
class VocoderTrainSummary(TrainSummary):
    mel_preset: str  # name of the mel preset the vocoder works at


class VocoderTask:
    """:class:`~maa.trainer.TrainTask` for HiFi-GAN."""

    name = "vocoder"

    def __init__(
        self,
        dataset,
        valid,
        model: HiFiGANConfig,
        settings: VocoderTrainSettings,
        bundle: Bundle,
        preset: str,
    ) -> None:
        self._dataset, self.valid, self.model, self.settings = dataset, valid, model, settings
        self.bundle, self.preset, self.mel = bundle, preset, model.mel_preset
        self.mel_fn = MelSpectrogram(self.mel)
        # HiFi-GAN's loss mel covers the full band (fmax_for_loss = None)
        self.loss_mel_fn = MelSpectrogram(replace(self.mel, f_max=self.mel.sample_rate / 2))

    def config_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "model": self.model.to_dict(),
            "settings": self.settings.to_dict(),
        }

    def modules(self) -> dict[str, nn.Module]:
        # train_vocoder has checked init: None or "default"
        if self.settings.init == "default":
            generator = load_universal(self.model).requires_grad_(True)
        else:
            generator = build_generator(self.model)
        return {"generator": add_weight_norm(generator), "disc": Discriminators(self.model)}

    def build_optimizers(self, modules: dict[str, nn.Module], cfg: TrainConfig):
        s = self.settings
        gamma = s.lr_decay ** (1.0 / s.lr_decay_every)
        opts = {
            name: torch.optim.AdamW(modules[name].parameters(), lr=s.lr, betas=s.betas)
            for name in ("generator", "disc")
        }
        return opts, {name: lr_exponential(opt, gamma) for name, opt in opts.items()}

    def dataset(self):
        return self._dataset

    def ema_module(self) -> str | None:
        return "generator"

    def train_step(self, batch: torch.Tensor, modules: dict[str, nn.Module], ctx: StepContext):
        wave = batch  # (B, segment) in [-1, 1]
        gen, disc = modules["generator"], modules["disc"]
        mel_fn = self.mel_fn.to(wave.device)
        loss_mel_fn = self.loss_mel_fn.to(wave.device)
        with torch.no_grad():
            mel = mel_fn(wave)  # (B, n_mels, frames)
            real_loss_mel = loss_mel_fn(wave)
        fake = gen(mel.transpose(1, 2))[:, : wave.shape[-1]]  # (B, segment)

        # one pass over real and generated audio (no batch norm in D, so this is exact, and
        # DDP sees a single forward per backward)
        scores, _ = disc(torch.cat([wave, fake.detach()]))
        b = wave.shape[0]
        loss_d = discriminator_loss([s[:b] for s in scores], [s[b:] for s in scores])
        ctx.backward(loss_d)
        ctx.optimizer_step("disc")

        # The generator's adversarial terms go through a frozen copy of D's weights, so they
        # leave no gradient in D (D's optimiser zeroes only after its own step; with gradient
        # accumulation a toggle of requires_grad would also confuse DDP).
        plain = ctx.accelerator.unwrap_model(disc)
        frozen = {n: p.detach() for n, p in plain.named_parameters()}
        with torch.no_grad():
            _, real_feats = torch.func.functional_call(plain, frozen, (wave,))
        fake_scores, fake_feats = torch.func.functional_call(plain, frozen, (fake,))
        loss_mel = F.l1_loss(loss_mel_fn(fake), real_loss_mel)
        loss_adv = generator_adv_loss(fake_scores)
        loss_fm = feature_loss(real_feats, fake_feats, self.settings.fm_weight)
        loss_g = loss_adv + loss_fm + self.settings.mel_weight * loss_mel
        ctx.backward(loss_g)
        ctx.optimizer_step("generator")
        ctx.log(loss=loss_g, loss_d=loss_d, mel_l1=loss_mel, adv=loss_adv, fm=loss_fm)

    def validate(self, modules: dict[str, nn.Module], step: int, writer: Any) -> dict[str, float]:
        if self.valid is None:
            return {}
        gen = modules["generator"]
        device = next(gen.parameters()).device
        mel_fn = self.mel_fn.to(device)
        losses = []
        for wave in self.valid.waves[:4]:
            wave = wave[: 2 * self.mel.sample_rate].to(device)
            mel = mel_fn(wave)
            fake = gen(mel.transpose(1, 2))
            losses.append(float((mel_fn(fake) - mel).abs().mean()))
        return {"mel_l1": sum(losses) / len(losses)}

    def export(self, modules: dict[str, nn.Module], step: int) -> None:
        generator = build_generator(self.model)
        load_strict(generator, folded_state_dict(modules["generator"]), "trained generator")
        self.bundle.save_module(
            "vocoder",
            generator,
            kind="hifigan",
            config=self.model.to_dict(),
            extra={"step": step, "preset": self.preset, "init": self.settings.init},
        )


def train_vocoder(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    preset: str = "tiny",
    train_cfg: TrainConfig = TrainConfig(),
    *,
    resume: bool = False,
    init: str | None = None,
    mel: str | None = None,
    segment_frames: int | None = None,
    lr: float | None = None,
) -> VocoderTrainSummary:
    """Train (or fine-tune with ``init="default"``) HiFi-GAN on a manifest's train split.

    Writes the ``vocoder`` component into bundle folder ``out`` (training state in
    ``out/train/vocoder``). Unusable files are skipped and listed in the summary's ``skipped``.
    """
    model = get_hifigan_config(preset, mel)
    settings = VocoderTrainSettings(init=init).override(segment_frames=segment_frames, lr=lr)
    if settings.segment_frames < 4:
        raise MaaError(f"--segment-frames must be at least 4, got {settings.segment_frames}")
    if settings.lr <= 0:
        raise MaaError(f"--lr must be positive, got {settings.lr}")
    if init is not None and init != "default":
        raise MaaError(f"--init {init!r}: only 'default' (the pretrained universal HiFi-GAN)")
    if init == "default":
        load_universal(model)  # fail before reading any audio if the shapes cannot match
    mel_preset = model.mel_preset
    df = read_manifest(manifest)
    clips = AudioClips(df, mel_preset.sample_rate, split="train")
    valid = None
    if "valid" in set(df["split"]):
        valid = AudioClips(df, mel_preset.sample_rate, split="valid")
    segment = settings.segment_frames * mel_preset.hop_length
    dataset = CropDataset(clips, segment, train_cfg.seed, short="pad")
    bundle = Bundle.create(out, mel_preset)
    task = VocoderTask(dataset, valid, model, settings, bundle, preset)
    return VocoderTrainSummary.of(
        train(task, out, train_cfg, resume=resume),
        skipped=clips.failures,
        clips=len(clips),
        mel_preset=mel_preset.name,
    )
