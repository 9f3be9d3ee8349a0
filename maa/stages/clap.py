"""Stage: contrastive language–audio pretraining (``maa train-clap``) and scoring (``clap-score``).

Loss: symmetric InfoNCE over a batch of (audio window, caption) pairs with the learnable
temperature, ``(CE(s·A·Tᵀ, Y) + CE(s·T·Aᵀ, Yᵀ)) / 2``. Clips that share a caption are positives
of each other (``Y`` spreads the target evenly over them) instead of being pushed apart as
negatives — small captioned sets repeat captions a lot. With the text backbone frozen, each
distinct caption's pooled MiniLM features are computed once and cached, so a step costs one
audio-CNN forward/backward plus two small MLPs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from maa.audio import load_audio
from maa.bundle import Bundle
from maa.clap import load_clap
from maa.config import Config
from maa.data import AudioClips, CropDataset
from maa.errors import AudioError, MaaError, choose
from maa.manifest import audio_paths, read_manifest, select_split
from maa.mel import get_mel_preset
from maa.models.clap import Clap, ClapConfig, TextTower, batched, get_clap_config
from maa.trainer import StepContext, TrainConfig, TrainSummary, lr_warmup, train

log = logging.getLogger("maa.clap")


@dataclass(frozen=True)
class ClapTrainConfig(Config):
    """Optimiser settings of one preset (AdamW with linear warm-up)."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    text_lr_mult: float = 0.1  # tuned MiniLM layers are pretrained: move them gently


@dataclass(frozen=True, kw_only=True)
class ClapTrainSummary(TrainSummary):
    captions: int  # distinct captions trained on


TRAIN_PRESETS: dict[str, ClapTrainConfig] = {
    "tiny": ClapTrainConfig(lr=3e-3, warmup_steps=5),
    "default": ClapTrainConfig(),
    "paper": ClapTrainConfig(lr=1e-4, warmup_steps=2000),
}


class CaptionedCrops(CropDataset):
    """Random ``clip_samples`` crops with the index of their caption in ``captions``."""

    def __init__(self, clips: AudioClips, crop_samples: int, seed: int, captions: list[str]):
        super().__init__(clips, crop_samples, seed, short="tile")
        index = {c: i for i, c in enumerate(captions)}
        self.caption_idx = [index[c] for c in clips.captions]

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        return {"wave": super().__getitem__(index), "caption": self.caption_idx[index]}


def contrastive_loss(
    audio: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, caption: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE of L2-normalised ``(B, D)`` embeddings; pairs sharing a caption id are
    all positives. Returns the loss and the audio→text top-1 accuracy of the batch."""
    logits = scale * audio @ text.T  # (B, B): row = audio, column = text
    same = (caption[:, None] == caption[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    loss = 0.5 * (
        nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)
    )
    acc = same.gather(1, logits.argmax(dim=1, keepdim=True)).mean()
    return loss, acc


@dataclass
class ClapTask:
    """:class:`~maa.trainer.TrainTask` for the toolkit's CLAP."""

    clips: AudioClips
    valid: AudioClips | None
    cfg: ClapConfig
    opt_cfg: ClapTrainConfig
    bundle: Bundle
    preset: str
    seed: int
    name = "clap"

    def __post_init__(self) -> None:
        self.captions = sorted(set(self.clips.captions))
        self.text_cache: torch.Tensor | None = None
        if self.cfg.text_tune_layers == 0:  # an all-frozen tower: its pooled features are cacheable
            tower = TextTower(self.cfg)
            self.text_cache = batched(tower, self.captions, 256, tower.width)

    def config_dict(self) -> dict[str, Any]:
        return {"clap": self.cfg.to_dict(), "optim": self.opt_cfg.to_dict()}

    def modules(self) -> dict[str, nn.Module]:
        return {"clap": Clap(self.cfg)}

    def build_optimizers(self, modules, train_cfg: TrainConfig):
        c = self.opt_cfg
        decay, no_decay, text = [], [], []
        for name, p in modules["clap"].named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("text.top."):
                text.append(p)
            elif p.dim() >= 2:
                decay.append(p)
            else:  # biases, norms and the temperature are not weight-decayed (CLIP recipe)
                no_decay.append(p)
        groups = [
            {"params": decay, "weight_decay": c.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if text:
            groups.append(
                {"params": text, "weight_decay": c.weight_decay, "lr": c.lr * c.text_lr_mult}
            )
        opt = torch.optim.AdamW(groups, lr=c.lr)
        return {"clap": opt}, {"clap": lr_warmup(opt, c.warmup_steps)}

    def dataset(self) -> CaptionedCrops:
        crop = round(self.cfg.clip_seconds * get_mel_preset(self.cfg.mel).sample_rate)
        return CaptionedCrops(self.clips, crop, self.seed, self.captions)

    def ema_module(self) -> str | None:
        return "clap"

    def train_step(self, batch: dict[str, torch.Tensor], modules, ctx: StepContext) -> None:
        model = modules["clap"]
        caption = batch["caption"]
        kwargs: dict[str, Any] = {}
        if self.text_cache is not None:
            self.text_cache = self.text_cache.to(ctx.device)  # moved once; then a no-op
            kwargs["text_features"] = self.text_cache[caption]
        else:
            kwargs["texts"] = [self.captions[i] for i in caption.tolist()]
        with ctx.accelerator.autocast():
            audio, text, scale = model(batch["wave"], **kwargs)
        loss, acc = contrastive_loss(audio.float(), text.float(), scale.float(), caption)
        ctx.backward(loss)
        ctx.optimizer_step("clap")
        ctx.log(loss=loss, acc=acc, scale=scale)

    def validate(self, modules, step: int, writer) -> dict[str, float]:
        if self.valid is None:
            return {}
        clap = modules["clap"]
        audio = clap.embed_audio(self.valid.waves, clap.sample_rate)
        r = retrieval_metrics(clap, audio, self.valid.captions, ks=(1,))
        return {"t2a_r1": r["t2a_r1"], "a2t_r1": r["a2t_r1"]}

    def export(self, modules, step: int) -> None:
        self.bundle.save_module(
            "clap",
            modules["clap"],
            kind="clap",
            config=self.cfg.to_dict(),
            extra={
                "preset": self.preset,
                "steps": step,
                # the MiniLM backbone is referenced, never copied; only tuned top layers are stored
                "text_encoder": self.cfg.text_model,
                "tuned_text_layers": self.cfg.text_tune_layers,
            },
        )


def train_clap(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    preset: str = "default",
    train_cfg: TrainConfig = TrainConfig(),
    *,
    resume: bool = False,
    lr: float | None = None,
    tune_text_layers: int | None = None,
) -> ClapTrainSummary:
    """Train (or resume) a CLAP on a manifest's captioned train rows; writes ``clap`` into ``out``.

    Rows with an empty caption and unusable audio files are skipped (listed in ``skipped``).
    A ``valid`` split, when present, is scored by retrieval recall@1 every ``val_every`` steps.
    """
    opt_cfg = choose(TRAIN_PRESETS, preset, "preset").override(lr=lr)
    cfg = get_clap_config(preset).override(text_tune_layers=tune_text_layers)
    mel = get_mel_preset(cfg.mel)
    df = read_manifest(manifest)
    captioned, skipped = _captioned(df, manifest)
    clips = AudioClips(captioned, mel.sample_rate, split="train")
    valid = None
    if "valid" in set(captioned["split"]):
        try:
            valid = AudioClips(captioned, mel.sample_rate, split="valid")
            skipped += valid.failures
        except MaaError as exc:  # an unusable valid split only switches validation off
            log.warning("no validation: %s", exc)
    bundle = Bundle.create(out, mel)
    task = ClapTask(clips, valid, cfg, opt_cfg, bundle, preset, train_cfg.seed)
    return ClapTrainSummary.of(
        train(task, out, train_cfg, resume=resume),
        skipped=skipped + clips.failures,
        clips=len(clips),
        captions=len(task.captions),
    )


def _captioned(df: pd.DataFrame, name: Any) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    keep = df["caption"].astype(str).str.strip() != ""
    skipped = [
        (str(p), f"{p}: empty caption") for p, k in zip(audio_paths(df), keep, strict=True) if not k
    ]
    if not keep.any():
        raise MaaError(
            f"{name}: no row has a caption; CLAP trains on (audio, caption) pairs — caption the "
            "clips first (e.g. `maa distill`) or pass a captioned manifest"
        )
    out = df[keep]
    out.attrs.update(df.attrs)
    for _, reason in skipped:
        log.warning("skipping %s", reason)
    return out, skipped


# -- scoring ----------------------------------------------------------------------------------
def retrieval_metrics(
    clap: Any, audio: torch.Tensor, captions: list[str], ks: tuple[int, ...] = (1, 10)
) -> dict[str, float]:
    """Agreement and zero-shot retrieval of clips (their ``clap`` audio embeddings ``(N, D)``)
    with their ``captions``. Identical captions are one query; any clip sharing a caption counts
    as a hit.

    Returns ``clips``, ``captions`` (distinct), ``matched_cosine`` / ``mismatched_cosine`` (mean
    cosine of a clip with its own / with the other distinct captions), ``t2a_r{k}`` and
    ``a2t_r{k}`` (recall@k, 0–1), and ``chance_a2t_r1`` (1 / number of distinct captions).
    """
    uniq = sorted(set(captions))
    index = {c: i for i, c in enumerate(uniq)}
    cid = torch.tensor([index[c] for c in captions])
    text = clap.embed_text(uniq)
    n_caps = text.shape[0]
    sim = audio @ text.T  # (N, U)
    own = torch.zeros_like(sim, dtype=torch.bool)
    own[torch.arange(len(cid)), cid] = True
    out = {
        "clips": float(len(cid)),
        "captions": float(n_caps),
        "matched_cosine": float(sim[own].mean()),
        "mismatched_cosine": float(sim[~own].mean()) if n_caps > 1 else float("nan"),
        "chance_a2t_r1": 1.0 / n_caps,
    }
    # audio→text: rank of each clip's own caption among the distinct captions
    a2t_rank = (sim > sim[own].unsqueeze(1)).sum(dim=1)
    # text→audio: for each distinct caption present, the best rank of a clip that carries it
    present = torch.unique(cid)
    order = sim.T[present].argsort(dim=1, descending=True)  # (P, N) clips by similarity
    hit = cid[order] == present.unsqueeze(1)
    t2a_rank = hit.float().argmax(dim=1)
    for k in ks:
        out[f"t2a_r{k}"] = float((t2a_rank < k).float().mean())
        out[f"a2t_r{k}"] = float((a2t_rank < k).float().mean())
    return out


def clap_score(
    manifest: str | os.PathLike[str] | pd.DataFrame,
    clap: Any,
    split: str | None = None,
    device: str = "cpu",
    chunk: int = 256,
) -> dict[str, Any]:
    """Score a manifest's captions against its audio with a CLAP (object, bundle or HF folder).

    Returns :func:`retrieval_metrics` (recall@1 and @10) plus ``skipped``: ``(path, reason)`` of
    rows with unreadable audio or an empty caption.
    """
    df = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
    df = select_split(df, split)
    if isinstance(clap, (str, os.PathLike)):
        clap = load_clap(clap, device)
    name = "manifest" if isinstance(manifest, pd.DataFrame) else manifest
    captioned, skipped = _captioned(df, name)
    paths = audio_paths(captioned)
    texts = [str(c).strip() for c in captioned["caption"]]
    chunks, kept = [], []  # kept: the captions of the readable clips
    for start in range(0, len(paths), chunk):  # bounded memory on long manifests
        waves = []
        for path, caption in zip(
            paths[start : start + chunk], texts[start : start + chunk], strict=True
        ):
            try:
                wave, _ = load_audio(path, clap.sample_rate)
            except AudioError as exc:
                skipped.append((str(path), str(exc)))
                log.warning("skipping %s", exc)
                continue
            waves.append(wave)
            kept.append(caption)
        if waves:
            chunks.append(clap.embed_audio(waves, clap.sample_rate))
    if not chunks:
        raise MaaError(f"no readable captioned clips to score ({len(skipped)} skipped)")
    # captions whose every clip was unreadable are not among the queries
    result: dict[str, Any] = retrieval_metrics(clap, torch.cat(chunks), kept, ks=(1, 10))
    result["skipped"] = skipped
    return result
