"""X-to-audio prompts of ``maa generate``: an example sound, a picture or a video instead of (or
mixed with) text, for bundles whose U-Net is conditioned on one pooled embedding.

* ``--audio-prompt FILE`` (bundles of ``train-ldm --condition clap-audio``): the CLAP audio
  embedding of the file; with a text prompt, ``normalize(w · audio + (1 − w) · text)`` for
  ``--audio-prompt-weight w`` (default 0.5), each prompt of a prompt file mixed in turn.
* ``--image IMG`` / ``--video FILE`` (bundles of ``train-ldm --text-encoder clip:DIR``): the
  normalised CLIP image embedding; for a video, the normalised mean over frames sampled
  ``--video-fps`` times per second, with the clip lasting as long as the video unless
  ``--duration`` says otherwise.

:func:`check_inputs` checks every file and that the bundle was trained for the input before any
model loads; :meth:`XPrompts.condition` embeds the inputs with the bundle's own encoder and
returns the :class:`~maa.generate.Generator` view that samples with them
(:meth:`~maa.generate.Generator.conditioned`), so long clips, loops and restyling work alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from maa.audio import audio_info, load_audio
from maa.bundle import Bundle
from maa.condition import (
    VIDEO_FPS,
    bundle_conditioning,
    image_embedding,
    load_image,
    mix,
    video_embedding,
    video_frames,
)
from maa.errors import MaaError
from maa.generate import MAX_SECONDS, Generator, SamplingSettings

DEFAULT_AUDIO_WEIGHT = 0.5


@dataclass
class XPrompts:
    """The non-text prompts of one ``maa generate`` run, checked and decoded."""

    audio_prompt: Path | None = None
    audio_prompt_weight: float | None = None
    image: Path | None = None
    video: Path | None = None
    video_fps: float = VIDEO_FPS
    frames: list = field(default_factory=list)  # the decoded image, or the sampled video frames
    video_seconds: float | None = None

    @property
    def given(self) -> bool:
        return any(x is not None for x in (self.audio_prompt, self.image, self.video))

    @property
    def label(self) -> str:
        """The prompt text that names the input when no text prompt is given."""
        if self.image is not None:
            return f"image {self.image.name}"
        if self.video is not None:
            return f"video {self.video.name}"
        return f"audio prompt {Path(self.audio_prompt or '').name}"

    def how(self) -> dict[str, Any]:
        """Columns recorded with every generated clip."""
        out: dict[str, Any] = {}
        if self.audio_prompt is not None:
            out["audio_prompt"] = str(self.audio_prompt)
            if self.audio_prompt_weight is not None:
                out["audio_prompt_weight"] = self.audio_prompt_weight
        if self.image is not None:
            out["image"] = str(self.image)
        if self.video is not None:
            out.update(video=str(self.video), video_fps=self.video_fps)
        return out

    @torch.no_grad()
    def condition(self, gen: Generator, texts: list[str] | None) -> Generator:
        """``gen`` conditioned on the inputs: each prompt of ``texts`` mixed with the audio
        prompt, or (``texts`` None) :attr:`label` standing for the input alone."""
        enc = gen.text_encoder
        if self.audio_prompt is not None:
            wave, sr = load_audio(self.audio_prompt, allow_silent=False)
            audio = enc.embed_audio([wave], sr)[0]
            if texts is None:
                return gen.conditioned({self.label: audio})
            weight = self.audio_prompt_weight
            weight = DEFAULT_AUDIO_WEIGHT if weight is None else weight
            text = enc.encode(texts).pooled.float().cpu()
            mixes = {t: mix(audio, e, weight) for t, e in zip(texts, text, strict=True)}
            return gen.conditioned(mixes)
        if self.image is not None:
            return gen.conditioned({self.label: image_embedding(enc, self.frames)[0]})
        return gen.conditioned({self.label: video_embedding(enc, self.frames)})


def check_inputs(
    bundle: str | os.PathLike[str] | None,
    settings: SamplingSettings,
    *,
    text_given: bool,
    batch: bool,
    audio_prompt: str | os.PathLike[str] | None = None,
    audio_prompt_weight: float | None = None,
    image: str | os.PathLike[str] | None = None,
    video: str | os.PathLike[str] | None = None,
    video_fps: float | None = None,
) -> XPrompts:
    """The inputs checked (combinations, files decodable, ``bundle`` trained for them), before
    any model loads; ``bundle`` may be None when no input is given."""
    x = XPrompts(
        Path(audio_prompt) if audio_prompt is not None else None,
        audio_prompt_weight,
        Path(image) if image is not None else None,
        Path(video) if video is not None else None,
        VIDEO_FPS if video_fps is None else float(video_fps),
    )
    visual = "--image" if x.image is not None else "--video" if x.video is not None else None
    if x.image is not None and x.video is not None:
        raise MaaError("pass --image or --video, not both")
    if audio_prompt_weight is not None and x.audio_prompt is None:
        raise MaaError("--audio-prompt-weight needs --audio-prompt FILE")
    if audio_prompt_weight is not None and not text_given:
        raise MaaError(
            "--audio-prompt-weight weighs the audio prompt against a text PROMPT; give one, or "
            "drop the weight to generate from the sound alone"
        )
    if audio_prompt_weight is not None and not 0.0 <= audio_prompt_weight <= 1.0:
        raise MaaError(
            f"--audio-prompt-weight must lie in [0, 1] (1: the sound alone, 0: the text alone), "
            f"got {audio_prompt_weight}"
        )
    if video_fps is not None and x.video is None:
        raise MaaError("--video-fps needs --video FILE")
    if visual and (x.audio_prompt is not None or text_given or batch):
        raise MaaError(f"{visual} stands alone: drop the PROMPT, --prompts and --audio-prompt")
    if not x.given:
        return x
    if settings.candidates > 1 and not text_given:
        raise MaaError(
            "--candidates > 1 ranks candidates by their CLAP score against a text prompt; "
            "give a PROMPT as well, or generate one candidate"
        )
    root = Bundle.open(bundle)
    condition, spec = bundle_conditioning(root)
    if x.audio_prompt is not None:
        if condition != "clap-audio":
            raise MaaError(
                f"--audio-prompt needs a bundle trained on CLAP audio embeddings (`maa train-ldm "
                f"--condition clap-audio`); {root.root} was trained on text embeddings ({spec})"
            )
        audio_info(x.audio_prompt)  # a missing or unreadable file fails before any model loads
    if visual:
        if spec.partition(":")[0] != "clip":
            raise MaaError(
                f"{visual} needs a bundle trained on a CLIP text encoder (`maa train-ldm "
                f"--text-encoder clip:DIR`, DIR a local CLIPModel folder); {root.root} was "
                f"trained with {spec!r}"
            )
        if x.image is not None:
            x.frames = [load_image(x.image)]
        else:
            x.frames, x.video_seconds = video_frames(x.video, x.video_fps)
    return x


def video_duration(x: XPrompts) -> float:
    """The clip's duration taken from the video (at most the 60 s maa generates)."""
    seconds = float(x.video_seconds or 0.0)
    if seconds > MAX_SECONDS:
        raise MaaError(
            f"--video {x.video}: the video lasts {seconds:.1f} s, longer than the "
            f"{MAX_SECONDS:.0f} s maa generates; pass --duration (or cut the video)"
        )
    if seconds <= 0:
        raise MaaError(f"--video {x.video}: its duration is unknown; pass --duration")
    return seconds
