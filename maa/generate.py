"""Text → audio: the Python API behind ``maa generate``.

>>> gen = Generator.from_bundle("my_bundle")                       # doctest: +SKIP
>>> [clip] = gen.generate("a dog barks in the rain", duration=5.0, seed=1)  # doctest: +SKIP
>>> clip.wave.shape, clip.sr                                          # doctest: +SKIP

Latents ``(B, z, n_mels/8, frames/8)`` are denoised by the bundle's U-Net with any diffusers
scheduler built from the bundle's noise schedule, using classifier-free guidance
``ε_u + s (ε_c − ε_u)`` with the conditional and unconditional passes in one batched forward;
then decoded by the VAE to a log-mel, vocoded, trimmed to the requested duration and loudness
normalised. With ``candidates > 1`` a CLAP keeps the candidate closest to the prompt.
"""

from __future__ import annotations

import copy
import inspect
import os
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import diffusers
import torch
from torch import nn

from maa.bundle import Bundle
from maa.condition import NamedEmbeddings, conditioner_from_bundle
from maa.device import resolve_device, resolve_dtype
from maa.dsp import loudness
from maa.errors import BundleError, MaaError, check_count, choose
from maa.fsutil import atomic_path
from maa.mel import MelPreset, log_compress
from maa.models.unet import NoiseSchedule, build_unet_for, takes_class_labels
from maa.models.vae import load_vae
from maa.text import TextEmbedding, TextEncoder
from maa.vocoder import resolve_vocoder_for

# chosen by measurement (README): with "trailing" timesteps DPM-Solver++(2M) at 20-25 steps lands
# as close to a 250-step reference as DDIM-100 does, at a quarter of the U-Net evaluations
DEFAULT_SAMPLER = "dpmpp-2m"
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 3.0
MAX_SECONDS = 60.0
INPAINT_UNET = "unet_inpaint"  # the bundle component `train-ldm --task inpaint` writes
TARGET_LUFS = -20.0
MAX_MEL_MAGNITUDE = 1e3  # linear mel magnitude ceiling for decoded mels
PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBFS
# MiniLM cosine between a prompt and the nearest training caption below which the prompt is
# called out of domain: measured on the shipped bundle, in-domain prompts ("a dog barking in
# rain", "heavy rain on a roof") score ≥ 0.55, unrelated ones ("typing on a keyboard", "a
# spaceship engine humming") ≤ 0.40
OUT_OF_DOMAIN_COSINE = 0.45

# the sampling settings a bundle may record as its own defaults (an imported release's)
BUNDLE_DEFAULTS = ("sampler", "steps", "guidance")

SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpmpp-2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
}


def make_scheduler(name: str, schedule: NoiseSchedule):
    """A fresh diffusers scheduler ``name`` built with ``from_config`` on the bundle's schedule."""
    cls_name, extra = choose(SAMPLERS, name, "sampler")
    return getattr(diffusers, cls_name).from_config({**schedule.scheduler_config(name), **extra})


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample, checked once on construction: ``duration`` seconds (0 < s ≤ 60); ``steps``,
    ``candidates`` per prompt (a CLAP keeps the best) and ``batch_size`` latents per U-Net batch,
    each ≥ 1; ``guidance`` ≥ 0 (1: conditional pass only); ``seed`` the base seed, drawn at random
    when None so the settings record how to reproduce a run."""

    duration: float = 5.0
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    sampler: str = DEFAULT_SAMPLER
    seed: int | None = None
    negative_prompt: str | None = None
    candidates: int = 1
    batch_size: int = 8
    normalize: bool = True

    def __post_init__(self) -> None:
        for name in ("--steps", "--candidates", "batch_size"):  # batch_size: Python API only
            check_count(name, getattr(self, name.lstrip("-")))
        if not self.guidance >= 0:
            raise MaaError(f"--guidance must be ≥ 0 (1 turns guidance off), got {self.guidance}")
        if not self.duration > 0:
            raise MaaError(f"--duration must be positive, got {self.duration} s")
        if self.duration > MAX_SECONDS:
            raise MaaError(
                f"--duration {self.duration} s is longer than the supported {MAX_SECONDS:.0f} s; "
                "generate shorter clips"
            )
        choose(SAMPLERS, self.sampler, "sampler")
        if self.seed is None:
            object.__setattr__(self, "seed", random.SystemRandom().randrange(2**31))


class SamplingEdit(Protocol):
    """How an edit of an input changes :meth:`Generator.sample` (implemented in :mod:`maa.edit`:
    SDEdit's late start, inpainting's known region, a loop's circular latents). Latents are
    ``(B, z, H, W)``, waves ``(T,)`` at the bundle's rate."""

    def begin(self, sched: Any, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first latents from unit-Gaussian ``noise`` and the timesteps to run."""

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """The U-Net's input for the scaled latents ``x``."""

    def model_output(self, eps: torch.Tensor) -> torch.Tensor:
        """The guided U-Net output, back on the latent grid of ``x``."""

    def after_step(
        self, sched: Any, timesteps: torch.Tensor, i: int, x: torch.Tensor
    ) -> torch.Tensor:
        """The latents after step ``i`` of ``timesteps``."""

    def decode(self, gen: Generator, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-mel, wave) of the final latents (usually ``gen.decode``)."""

    def finish(self, wave: torch.Tensor) -> torch.Tensor:
        """One candidate's final waveform."""


@dataclass
class GeneratedAudio:
    """One generated clip: ``wave (T,)`` float32 in [-1, 1] at ``sr`` Hz, its log-mel
    ``(n_mels, frames)``, the prompt, the seed that reproduces it and the CLAP score of the
    chosen candidate (None without reranking), its index and every candidate's score."""

    wave: torch.Tensor
    sr: int
    prompt: str
    seed: int
    clap_score: float | None
    mel: torch.Tensor
    candidate: int = 0
    candidate_scores: list[float] | None = None


class Generator:
    """Text-to-audio sampling from trained components (see :meth:`from_bundle`)."""

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        text_encoder: TextEncoder,
        vocoder,
        mel: MelPreset,
        schedule: NoiseSchedule,
        scale_factor: float,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        clap=None,
        clap_source: str | None = None,
    ) -> None:
        self.unet, self.vae, self.text_encoder, self.vocoder = unet, vae, text_encoder, vocoder
        self.mel, self.schedule, self.scale_factor = mel, schedule, float(scale_factor)
        self.device, self.dtype = torch.device(device), dtype
        self._clap, self._clap_source = clap, clap_source
        self._caption_index: tuple[list[str], torch.Tensor] | None = None
        self._schedulers: dict[str, Any] = {}
        # AudioLDM-style U-Nets take the pooled text embedding as class labels, no tokens
        self.class_conditioned = takes_class_labels(unet)
        if self.class_conditioned:
            cross = unet.config.projection_class_embeddings_input_dim
        else:
            cross = getattr(unet.config, "cross_attention_dim", None)
        if cross is not None and int(cross) != text_encoder.width:
            what = "class embedding" if self.class_conditioned else "cross-attention"
            raise BundleError(
                f"text encoder {text_encoder.spec!r} gives {text_encoder.width}-wide embeddings "
                f"but the U-Net's {what} expects {cross}; use the encoder it was trained with"
            )

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_bundle(
        cls,
        path: str | os.PathLike[str],
        device: str | None = "auto",
        dtype: str | None = "auto",
        vocoder: str | None = None,
        clap: str | os.PathLike[str] | None = None,
        compile: bool = False,
        unet: str = "unet",
    ) -> Generator:
        """Load a bundle's U-Net, VAE, text encoder and vocoder (``vocoder`` overrides the
        bundle's: ``default``, ``griffin-lim`` or a bundle path; ``clap`` a CLAP for reranking).
        ``compile`` wraps the U-Net in ``torch.compile`` (CUDA). ``unet`` names the U-Net
        component: ``unet`` (text-to-audio) or :data:`INPAINT_UNET` (``train-ldm --task
        inpaint``, for :mod:`maa.inpaint`)."""
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        bundle = Bundle.open(path)
        for name in ("vae", unet, "text_encoder"):
            if not bundle.has(name):
                have = ", ".join(sorted(bundle.components)) or "nothing"
                step = "maa train-vae" if name == "vae" else "maa train-ldm"
                step += " --task inpaint" if name == INPAINT_UNET else ""
                raise BundleError(
                    f"{bundle.root}: bundle has no {name!r} component (it has {have}); "
                    f"train it with `{step} --bundle {bundle.root}`"
                )
        entry = bundle.component(unet)
        model = build_unet_for(entry.get("kind", "unet"), entry["config"])
        bundle.load_into(unet, model)
        # nn.Module.to: diffusers' own .to(dtype) logs a spurious fp32-modules warning
        model = nn.Module.to(model, dev, dt).eval().requires_grad_(False)
        if compile:
            model = torch.compile(model)
        vae = load_vae(bundle, dev).to(dtype=dt).requires_grad_(False)
        text = conditioner_from_bundle(bundle, dev)
        voc_dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dt, "fp32")
        voc = resolve_vocoder_for(bundle, vocoder, device=str(dev), dtype=voc_dtype)
        if clap is None and bundle.has("clap"):
            clap = bundle.root
        if clap is None:
            from maa.clap import find_default_clap

            clap = find_default_clap()
        clap_src = str(clap) if clap is not None else None
        gen = cls(
            model, vae, text, voc, bundle.mel, NoiseSchedule.from_dict(entry["schedule"]),
            entry["scale_factor"], dev, dt, clap_source=clap_src,
        )  # fmt: skip
        gen.bundle = bundle
        gen.defaults = dict(entry.get("defaults", {}))  # sampling defaults an import recorded
        return gen

    def conditioned(self, embeddings: dict[str, torch.Tensor]) -> Generator:
        """This generator with prompts that stand for given embeddings: sampling the prompt
        ``name`` conditions on ``embeddings[name]``, a ``(D,)`` vector in the space of the U-Net's
        pooled conditioning (an audio or image embedding, a mix), instead of its encoding. Only
        for U-Nets conditioned on one pooled vector (:func:`takes_class_labels`)."""
        if not self.class_conditioned:
            raise MaaError(
                "this bundle's U-Net attends to text tokens; only a U-Net trained on one pooled "
                "embedding (`maa train-ldm --condition clap-audio` or --text-encoder clip:DIR) "
                "takes audio, image or explicit embeddings"
            )
        view = copy.copy(self)
        view.text_encoder = NamedEmbeddings(self.text_encoder, embeddings)
        return view

    def clap(self):
        """The reranking CLAP (loaded on first use) or a clear error when none is available."""
        if self._clap is None:
            if self._clap_source is None:
                raise MaaError(
                    "--candidates > 1 needs a CLAP to rerank with: the bundle has no 'clap' "
                    "component; pass --clap PATH (a bundle with a CLAP or a local HF ClapModel)"
                )
            from maa.clap import load_clap

            self._clap = load_clap(self._clap_source, self.device)
        return self._clap

    @property
    def categories(self) -> dict[str, dict[str, Any]]:
        """The sound categories the U-Net was trained on (``{}`` when its manifest had none)."""
        bundle = getattr(self, "bundle", None)
        return bundle_categories(bundle) if bundle is not None else {}

    def nearest_category(self, prompt: str) -> tuple[str, float] | None:
        """The training category whose captions come closest to ``prompt`` (cosine of the text
        encoder's pooled embeddings), or ``None`` when the bundle records no categories."""
        return self.nearest_categories([prompt])[0]

    def nearest_categories(self, prompts: list[str]) -> list[tuple[str, float] | None]:
        """:meth:`nearest_category` for many prompts; the captions are encoded once."""
        if not self.categories:
            return [None] * len(prompts)
        if self._caption_index is None:
            cats = self.categories
            names = [c for c, info in cats.items() for _ in info["captions"]]
            captions = [cap for info in cats.values() for cap in info["captions"]]
            self._caption_index = (names, self._unit_pooled(captions))
        names, index = self._caption_index
        sims = self._unit_pooled(prompts) @ index.T
        best = sims.argmax(dim=1).tolist()
        return [(names[b], float(sims[i, b])) for i, b in enumerate(best)]

    def _unit_pooled(self, texts: list[str]) -> torch.Tensor:
        pooled = self.text_encoder.encode(texts).pooled.float()
        return nn.functional.normalize(pooled, dim=-1)

    # -- sampling ---------------------------------------------------------------------------
    def latent_shape(self, seconds: float) -> tuple[int, int, int]:
        """``(z, H, W)`` of one clip's latent for ``seconds`` of audio: ``(z, n_mels/d, F/d)``,
        or ``(z, F/d, n_mels/d)`` for a time-major VAE (AudioLDM), with ``F`` the clip's frames
        rounded up to the mel preset's multiple and ``d`` the VAE's downsampling."""
        frames = self.mel.frames_for_seconds(seconds)
        rule = getattr(self, "defaults", {}).get("latent_width")
        if rule:  # a release's own rule: Make-An-Audio's int(7.8 s) up to a multiple of 4
            d, multiple = self.vae.downsample, int(rule["multiple"])
            width = max(int(seconds * float(rule["per_second"])), -(-frames // d))
            frames = -(-width // multiple) * multiple * d
        # out_channels: an inpainting U-Net takes 2z + 1 input channels for z latent ones
        return (self.unet.config.out_channels, *self.vae.latent_size(self.mel.n_mels, frames))

    def encode_prompts(
        self, prompts: list[str], negative_prompt: str | None = None
    ) -> tuple[TextEmbedding, TextEmbedding]:
        """``(cond, uncond)`` for :meth:`sample_latents`: one row per prompt, and the encoding of
        ``negative_prompt`` (default ``""``, the unconditional) repeated for every prompt."""
        emb = self.text_encoder.encode([*prompts, negative_prompt or ""])
        emb = emb.to(self.device, self.dtype)
        rows = torch.arange(len(prompts))
        return _select(emb, rows), _select(emb, torch.full_like(rows, len(prompts)))

    def predict_noise(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: TextEmbedding,
        uncond: TextEmbedding | None,
        guidance: float,
    ) -> torch.Tensor:
        """Guided model output for latents ``x (B, z, H, W)`` at timestep ``t``.

        With ``uncond`` the unconditional and conditional halves run as one batch of 2B and
        combine as ``u + s (c − u)``; without it only the conditional pass runs.
        """
        both = [cond] if uncond is None else [uncond, cond]
        xin = torch.cat([x] * len(both))
        if self.class_conditioned:  # the pooled (L2-normalised CLAP) embedding, as AudioLDM
            pooled = torch.cat([e.pooled for e in both]).to(self.dtype)
            kwargs = {"encoder_hidden_states": None, "class_labels": pooled}
        else:
            tokens, mask = torch.cat([e.tokens for e in both]), torch.cat([e.mask for e in both])
            kwargs = {"encoder_hidden_states": tokens, "encoder_attention_mask": mask}
        out = self.unet(xin.to(self.dtype), t, **kwargs).sample.float()
        if uncond is None:
            return out
        eps_u, eps_c = out.chunk(2)
        return eps_u + guidance * (eps_c - eps_u)

    @torch.no_grad()
    def sample_latents(
        self,
        noise: torch.Tensor,
        cond: TextEmbedding,
        uncond: TextEmbedding | None,
        guidance: float,
        steps: int,
        sampler: str,
        generators: list[torch.Generator] | None = None,
        edit: SamplingEdit | None = None,
    ) -> torch.Tensor:
        """Denoise ``noise (B, z, H, W)`` (unit Gaussian) into scaled latents; ``edit`` (see
        :class:`SamplingEdit`) changes where sampling starts and what the U-Net sees."""
        if sampler not in self._schedulers:  # built once: set_timesteps resets all its state
            self._schedulers[sampler] = make_scheduler(sampler, self.schedule)
        sched = self._schedulers[sampler]
        sched.set_timesteps(steps, device=self.device)
        timesteps = sched.timesteps
        if edit is None:
            x = noise.to(self.device, torch.float32) * sched.init_noise_sigma
        else:
            x, timesteps = edit.begin(sched, noise.to(self.device, torch.float32))
        accepts_gen = "generator" in inspect.signature(sched.step).parameters
        for i, t in enumerate(timesteps):
            model_in = sched.scale_model_input(x, t)
            if edit is not None:
                model_in = edit.model_input(model_in)
            eps = self.predict_noise(model_in, t, cond, uncond, guidance)
            if edit is not None:
                eps = edit.model_output(eps)
            kwargs = {"generator": generators} if accepts_gen and generators else {}
            x = sched.step(eps, t, x, **kwargs).prev_sample
            if edit is not None:
                x = edit.after_step(sched, timesteps, i, x)
        return x

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled latents → (log-mel ``(B, n_mels, F)``, waveform ``(B, F * hop)``)."""
        logmel = self.vae.decode((latents / self.scale_factor).to(self.dtype)).float()
        # the decoder is unconstrained; values below the log floor or above any real STFT
        # magnitude mean nothing, and vocoders reject them
        top = float(log_compress(torch.tensor(MAX_MEL_MAGNITUDE), self.mel))
        logmel = logmel.clamp(self.mel.floor, top)
        wave = self.vocoder(logmel)
        return logmel, wave.float()

    def generate(self, prompts: str | list[str], **settings: Any) -> list[GeneratedAudio]:
        """One clip per prompt; ``settings`` are :class:`SamplingSettings` fields (``duration``,
        ``steps``, ``guidance``, ``sampler``, ``seed``, ``negative_prompt``, ``candidates``,
        ``batch_size``, ``normalize``); the sampler, steps and guidance not given are the bundle's
        recorded defaults (an imported release's), else maa's. See :meth:`sample`."""
        unset = {k for k in BUNDLE_DEFAULTS if settings.get(k) is None}
        given = {k: v for k, v in settings.items() if v is not None}
        return self.sample(
            check_prompts(prompts), self.with_defaults(SamplingSettings(**given), unset)
        )

    def with_defaults(self, settings: SamplingSettings, unset: set[str] | frozenset[str]):
        """``settings`` with the fields named in ``unset`` (of sampler, steps, guidance: those the
        user did not choose) replaced by the bundle's recorded sampling defaults, if it has any:
        an imported Make-An-Audio bundle samples with DDIM, 100 steps and guidance 3."""
        recorded = getattr(self, "defaults", {})
        chosen = {k: recorded[k] for k in BUNDLE_DEFAULTS if k in unset and k in recorded}
        return replace(settings, **chosen) if chosen else settings

    def sample(
        self,
        prompts: list[str],
        settings: SamplingSettings,
        seed_offset: int = 0,
        edit: SamplingEdit | None = None,
    ) -> list[GeneratedAudio]:
        """One clip per prompt of ``prompts`` (as :func:`check_prompts` returns them).

        Prompt ``i`` uses seed ``settings.seed + seed_offset + i``; its candidates draw their
        starting noise in turn from that seed on the CPU, so the same seed gives the same audio
        on the same device. Guidance 1 runs the conditional pass only. ``edit`` (from
        :mod:`maa.edit`) samples every prompt's candidates as an edit of one input; each
        candidate is finished by it (e.g. the input pasted back) before the CLAP ranks them.
        """
        candidates, guidance = settings.candidates, settings.guidance
        clap = self.clap() if candidates > 1 else None
        seeds = [settings.seed + seed_offset + i for i in range(len(prompts))]
        texts = [*prompts, settings.negative_prompt or ""]  # the last row is the unconditional
        emb = self.text_encoder.encode(texts).to(self.device, self.dtype)
        latent_shape = self.latent_shape(settings.duration)
        jobs = [(p, c) for p in range(len(prompts)) for c in range(candidates)]
        noises = {}
        for p, s in enumerate(seeds):
            g = torch.Generator().manual_seed(s)
            for c in range(candidates):
                noises[p, c] = torch.randn(latent_shape, generator=g)
        waves: dict[tuple[int, int], torch.Tensor] = {}
        mels: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(0, len(jobs), settings.batch_size):
            chunk = jobs[i : i + settings.batch_size]
            rows = torch.tensor([p for p, _ in chunk])
            cond = _select(emb, rows)
            uncond = _select(emb, torch.full_like(rows, len(prompts))) if guidance != 1 else None
            gens = [torch.Generator(self.device).manual_seed(seeds[p] * 1009 + c + 1)
                    for p, c in chunk]  # fmt: skip
            noise = torch.stack([noises[j] for j in chunk])
            latents = self.sample_latents(
                noise, cond, uncond, guidance, settings.steps, settings.sampler, gens, edit
            )
            logmel, wave = self.decode(latents) if edit is None else edit.decode(self, latents)
            for j, key in enumerate(chunk):
                waves[key], mels[key] = wave[j].cpu(), logmel[j].cpu()
        sr = int(self.vocoder.sample_rate)
        length = max(1, round(settings.duration * sr))
        out = []
        for p, prompt in enumerate(prompts):
            cands = [waves[p, c][:length] for c in range(candidates)]
            if edit is not None:
                cands = [edit.finish(w) for w in cands]
            cands = [loudness_normalize(w, sr) if settings.normalize else w.clamp(-1, 1)
                     for w in cands]  # fmt: skip
            best, scores = 0, None
            if clap is not None:
                scores = clap.score(torch.stack(cands), sr, [prompt] * candidates).tolist()
                best = max(range(candidates), key=lambda c: scores[c])
            score = scores[best] if scores is not None else None
            out.append(GeneratedAudio(cands[best], sr, prompt, seeds[p], score, mels[p, best],
                                      best, scores))  # fmt: skip
        return out


def bundle_categories(bundle) -> dict[str, dict[str, Any]]:
    """The categories a bundle's U-Net recorded at training (``{}`` without a U-Net or none)."""
    return bundle.component("unet").get("categories", {}) if bundle.has("unet") else {}


def _select(emb: TextEmbedding, rows: torch.Tensor) -> TextEmbedding:
    rows = rows.to(emb.tokens.device)
    return TextEmbedding(emb.tokens[rows], emb.mask[rows], emb.pooled[rows])


def check_prompts(prompts: str | list[str]) -> list[str]:
    """Prompts as a list, with an error for an empty list or an empty/whitespace prompt."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise MaaError("no prompt given; pass a prompt text or --prompts FILE")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            where = "the prompt" if len(prompts) == 1 else f"prompt {i + 1}"
            raise MaaError(f"{where} is empty; describe the sound to generate")
    return [p.strip() for p in prompts]


def loudness_normalize(wave: torch.Tensor, sr: int, target_lufs: float = TARGET_LUFS):
    """Gain ``wave (T,)`` to ``target_lufs`` (ITU-R BS.1770; RMS for clips under 0.4 s), then
    scale down so the peak stays under -1 dBFS; silence is returned unchanged."""
    wave = wave.float()
    peak = float(wave.abs().max()) if wave.numel() else 0.0
    if peak < 1e-4:
        return wave
    level = float("nan")
    if wave.numel() >= int(0.4 * sr):
        level = loudness(wave, sr)
    if not torch.isfinite(torch.tensor(level)):
        rms = float(wave.pow(2).mean().sqrt())
        level = 20 * torch.log10(torch.tensor(max(rms, 1e-9))).item()
    wave = wave * 10 ** ((target_lufs - level) / 20)
    peak = float(wave.abs().max())
    if peak > PEAK_CEILING:
        wave = wave * (PEAK_CEILING / peak)
    return wave.clamp(-1.0, 1.0)


def mel_image(logmel: torch.Tensor) -> torch.Tensor:
    """Log-mel ``(n_mels, F)`` → ``(1, n_mels, F)`` image in [0, 1], low bins at the bottom."""
    x = logmel.detach().float().cpu()
    x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-6)
    return x.flip(0).unsqueeze(0)


def save_spectrogram_png(
    path: str | os.PathLike[str],
    logmel: torch.Tensor | list[torch.Tensor],
    mel: MelPreset,
    titles: list[str] | None = None,
) -> Path:
    """Write the log-mel ``(n_mels, F)`` as a PNG with time (s) and mel-bin axes, atomically; a list
    of log-mels with their ``titles`` goes side by side on one colour scale with a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mels = [logmel] if titles is None else logmel
    seconds = mels[0].shape[-1] * mel.hop_length / mel.sample_rate
    size = (max(4.0, min(16.0, 1.2 * seconds + 2)), 3) if titles is None else (5 * len(mels), 3.2)
    fig, axes = plt.subplots(1, len(mels), figsize=size, dpi=100, squeeze=False)
    lo, hi = min(float(m.min()) for m in mels), max(float(m.max()) for m in mels)
    for ax, m, title in zip(axes[0], mels, titles or [""], strict=True):
        im = ax.imshow(m.float().cpu().numpy(), origin="lower", aspect="auto", vmin=lo, vmax=hi,
                       extent=(0, seconds, 0, mel.n_mels), cmap="magma")  # fmt: skip
        ax.set(title=title, xlabel="time (s)", ylabel="mel bin")
    if titles is None:
        fig.tight_layout()
    else:
        fig.colorbar(im, ax=axes[0].tolist(), label=f"log-mel ({mel.log})")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
