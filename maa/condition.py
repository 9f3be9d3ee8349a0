"""Conditioning on one pooled embedding of a contrastive model: CLAP audio/text, CLIP text/image.

AudioLDM trains its U-Net on the CLAP *audio* embedding of each clip, so it needs no captions,
and generates from the CLAP *text* embedding of a prompt; Make-An-Audio's image-to-audio model
trains on CLIP *text* embeddings and generates from the CLIP *image* embedding of a picture (for
a video, of its frames). Both work because the two towers of the model share one space. The
U-Net takes the L2-normalised vector through its class embedding
(:func:`maa.models.unet.takes_class_labels`), at training and in
:meth:`maa.generate.Generator.predict_noise` alike.

* :class:`ClapEmbedding` — a CLAP (a maa bundle or a local Hugging Face ``ClapModel`` folder) as
  a text encoder whose encoding is the CLAP text embedding (one vector per text); it also embeds
  audio. Spec ``clap-embed:PATH``; ``clap-embed:default`` is the CLAP shipped with maa.
* the ``clip:PATH`` text encoder of :mod:`maa.text`, with :func:`image_embedding` and
  :func:`video_embedding` for pictures and videos (decoded by PyAV, the ``video`` extra).
* :class:`NamedEmbeddings` — prompts that stand for given embeddings (an audio prompt, an
  image, a mix of audio and text), so every sampling path conditions on them unchanged.

The unconditional embedding of classifier-free guidance is the encoder's embedding of ``""`` in
every mode, for a dropped item at training and at generation (AudioLDM does the same): the CLAP
text embedding of ``""`` for ``clap-audio``, the CLIP text embedding of ``""`` for ``clip``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maa.bundle import BUNDLE_FILE, Bundle
from maa.clap import default_clap, load_clap
from maa.errors import BundleError, MaaError
from maa.system import ASSETS
from maa.text import TextEmbedding, TextEncoder, load_text_encoder, text_encoder_from_bundle

CONDITIONS = ("text", "clap-audio")
CLAP_KIND = "clap-embed"
SHIPPED_CLAP = "default"  # clap-embed:default → the CLAP shipped in maa/assets/clap
VIDEO_FPS = 1.0  # frames per second embedded from a video by default
VIDEO_EXTRA = "pip install 'maa[video]'"
DIGEST_BYTES = 8 << 20  # a weights file's digest covers its size and first 8 MiB


def check_condition(condition: str) -> str:
    if condition not in CONDITIONS:
        raise MaaError(f"--condition {condition!r} is not one of {', '.join(CONDITIONS)}")
    return condition


# -- CLAP embeddings -----------------------------------------------------------------------------
class ClapEmbedding(TextEncoder):
    """A CLAP as the conditioning encoder of a ``clap-audio`` U-Net: :meth:`encode` gives the
    L2-normalised CLAP text embedding (``pooled (B, D)``, ``tokens (B, 1, D)``), and
    :meth:`embed_audio` the audio embedding in the same space. ``digest`` identifies the weights
    (stored with the bundle and in the latent cache's fingerprint)."""

    def __init__(self, clap: nn.Module, source: str, path: Path) -> None:
        super().__init__(f"{CLAP_KIND}:{source}", CLAP_KIND, clap, None, 0, int(clap.embed_dim))
        self.source, self.path = source, path
        self.digest = clap_digest(path)

    @property
    def pooled_only(self) -> bool:
        return True

    @classmethod
    def load(
        cls,
        source: str | os.PathLike[str] | None,
        device: torch.device | str = "cpu",
        bundle_root: Path | None = None,
    ) -> ClapEmbedding:
        """``source``: a CLAP bundle or HF ``ClapModel`` folder, ``default`` (the shipped CLAP)
        or None (``$MAA_CLAP``, else the shipped one); relative paths are inside
        ``bundle_root`` when given."""
        if source is None:
            path = default_clap()
        elif str(source) == SHIPPED_CLAP:
            path = ASSETS / "clap"
        else:
            path = Path(source).expanduser()
            if not path.is_absolute() and bundle_root is not None:
                path = bundle_root / path
        shipped = (ASSETS / "clap").resolve()
        canonical = SHIPPED_CLAP if path.resolve() == shipped else str(path.resolve())
        return cls(load_clap(path, device), canonical, path)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEmbedding:
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        # clone: the CLAP answers with inference-mode tensors, which training cannot save
        pooled = self.model.embed_text(texts).float().clone().to(self.device)
        return TextEmbedding(pooled[:, None], torch.ones(len(texts), 1, dtype=torch.long,
                                                         device=self.device), pooled)  # fmt: skip

    @torch.no_grad()
    def embed_audio(self, waves: Any, sr: int) -> torch.Tensor:
        """Clips at ``sr`` Hz (``(B, T)`` or a list of ``(T,)``) → ``(B, D)`` L2-normalised CLAP
        audio embeddings on the CPU."""
        return self.model.embed_audio(waves, sr).float().clone()

    def reference(self) -> tuple[str, dict]:
        ref = "package:maa" if self.source == SHIPPED_CLAP else f"path:{self.source}"
        return ref, {"spec": self.spec, "width": self.width, "digest": self.digest}


def clap_digest(path: Path) -> str:
    """Short hash of a CLAP's weight files (size and first 8 MiB of each)."""
    if (path / BUNDLE_FILE).is_file():
        files = [path / Bundle.open(path).component("clap")["file"]]
    else:
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
        with f.open("rb") as fh:
            h.update(fh.read(DIGEST_BYTES))
    return h.hexdigest()[:16]


def load_conditioner(spec: str, device: torch.device | str = "cpu") -> TextEncoder:
    """The conditioning encoder for ``spec``: ``clap-embed:PATH`` (:class:`ClapEmbedding`) or
    any text encoder spec of :func:`maa.text.load_text_encoder`."""
    kind, _, where = spec.partition(":")
    if kind.strip().lower() == CLAP_KIND:
        return ClapEmbedding.load(where or None, device)
    return load_text_encoder(spec, device)


def conditioner_from_bundle(bundle: Bundle, device: torch.device | str = "cpu") -> TextEncoder:
    """The bundle's conditioning encoder (:func:`maa.text.text_encoder_from_bundle` unless it is
    a CLAP), checked against what the U-Net was trained with."""
    cfg = bundle.config("text_encoder")
    kind, _, where = str(cfg.get("spec", "")).partition(":")
    if kind != CLAP_KIND:
        return text_encoder_from_bundle(bundle, device)
    try:
        enc = ClapEmbedding.load(where or SHIPPED_CLAP, device, bundle.root)
    except MaaError as exc:
        raise BundleError(
            f"{bundle.root}: its U-Net is conditioned on the embeddings of the CLAP {where}, "
            f"which cannot be loaded: {exc}"
        ) from None
    if "width" in cfg and int(cfg["width"]) != enc.width:
        raise BundleError(
            f"{enc.path}: this CLAP gives {enc.width}-d embeddings but the U-Net of "
            f"{bundle.root} was trained on {cfg['width']}-d CLAP embeddings; put the CLAP it was "
            "trained with there"
        )
    if cfg.get("digest") and cfg["digest"] != enc.digest:
        raise BundleError(
            f"{enc.path}: this CLAP's weights differ from those the U-Net of {bundle.root} was "
            f"trained with (digest {enc.digest}, expected {cfg['digest']}); its embedding space "
            "does not match the U-Net: restore that CLAP"
        )
    return enc


def bundle_conditioning(bundle: Bundle) -> tuple[str, str]:
    """(the U-Net's training condition, ``text`` or ``clap-audio``; the encoder spec)."""
    condition = bundle.component("unet").get("condition", "text") if bundle.has("unet") else "text"
    spec = bundle.config("text_encoder").get("spec", "?") if bundle.has("text_encoder") else "?"
    return str(condition), str(spec)


# -- mixing and named embeddings -----------------------------------------------------------------
def mix(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    """``normalize(weight · a + (1 − weight) · b)`` of two ``(D,)`` unit embeddings."""
    if not 0.0 <= weight <= 1.0:
        raise MaaError(f"a mix weight must lie in [0, 1], got {weight}")
    return nn.functional.normalize(weight * a.float() + (1 - weight) * b.float(), dim=-1)


class NamedEmbeddings:
    """A conditioning encoder for which the prompts in ``table`` stand for given ``(D,)``
    embeddings; every other text is encoded by ``base``. Everything else is ``base``'s."""

    def __init__(self, base: TextEncoder, table: dict[str, torch.Tensor]) -> None:
        for name, vec in table.items():
            if vec.dim() != 1 or vec.shape[0] != base.width:
                raise MaaError(
                    f"the embedding given for {name!r} has shape {tuple(vec.shape)} but the "
                    f"U-Net takes {base.width}-d vectors ({base.spec})"
                )
        self.base = base
        self.table = {k: v.detach().float().cpu() for k, v in table.items()}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def encode(self, texts: list[str]) -> TextEmbedding:
        texts = [texts] if isinstance(texts, str) else list(texts)
        rest = list(dict.fromkeys(t for t in texts if t not in self.table))
        found = dict(self.table)
        if rest:
            found.update(zip(rest, self.base.encode(rest).pooled.float().cpu(), strict=True))
        pooled = torch.stack([found[t] for t in texts]).to(self.base.device)
        ones = torch.ones(len(texts), 1, dtype=torch.long, device=pooled.device)
        return TextEmbedding(pooled[:, None], ones, pooled)

    def __call__(self, texts: list[str]) -> TextEmbedding:
        return self.encode(texts)


# -- images and videos (CLIP) --------------------------------------------------------------------
def require_clip(encoder: TextEncoder, what: str) -> None:
    if getattr(encoder, "kind", None) != "clip":
        raise MaaError(
            f"{what} needs a bundle trained on a CLIP text encoder (`maa train-ldm "
            f"--text-encoder clip:DIR`, DIR a local CLIPModel folder); this one uses "
            f"{encoder.spec!r}"
        )


def load_image(path: str | os.PathLike[str]):
    """An image file as an RGB ``PIL.Image``, or a :class:`MaaError` naming it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MaaError(f"--image {path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise MaaError(
            f"--image {path}: cannot be decoded as an image ({exc}); pass a PNG, JPEG or "
            "another format Pillow reads"
        ) from None


def video_frames(path: str | os.PathLike[str], fps: float = VIDEO_FPS) -> tuple[list, float]:
    """Frames of a video sampled ``fps`` times per second (at 0, 1/fps, 2/fps … s, each the
    first frame at or after that time) as RGB ``PIL.Image``s, and the video's duration (s)."""
    if not fps > 0:
        raise MaaError(f"--video-fps must be positive, got {fps}")
    try:
        import av
    except ImportError:
        raise MaaError(f"--video needs the optional video decoder PyAV: {VIDEO_EXTRA}") from None
    path = Path(path)
    if not path.is_file():
        raise MaaError(f"--video {path}: no such file")
    errors = (getattr(av, "FFmpegError", OSError), OSError, ValueError)
    no_frames = f"--video {path}: no frame could be decoded; the video has no frames"
    try:
        container = av.open(str(path))
    except EOFError:  # the file ends before its first packet
        raise MaaError(no_frames) from None
    except errors as exc:
        raise MaaError(f"--video {path}: cannot be decoded as a video ({exc})") from None
    frames, next_t, last_t, step = [], 0.0, 0.0, 1.0 / fps
    with container:
        if not container.streams.video:
            raise MaaError(f"--video {path}: the file has no video stream")
        stream = container.streams.video[0]
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else last_t
                last_t = t
                if t + 1e-6 >= next_t:
                    frames.append(frame.to_image().convert("RGB"))
                    while next_t <= t + 1e-6:
                        next_t += step
        except EOFError:  # cut short: the frames decoded so far count
            pass
        except errors as exc:
            raise MaaError(f"--video {path}: cannot be decoded as a video ({exc})") from None
        rate = float(stream.average_rate or 0) or 25.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = last_t + 1.0 / rate
    if not frames:
        raise MaaError(no_frames)
    return frames, duration


def _image_processor(encoder: TextEncoder):
    """The CLIP folder's image processor (loaded once per encoder)."""
    proc = getattr(encoder, "_image_processor", None)
    if proc is None:
        from transformers import AutoImageProcessor
        from transformers.utils import logging as hf_logging

        folder = encoder.spec.partition(":")[2]
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the note that torchvision would be faster
        try:
            proc = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise MaaError(
                f"{folder}: no usable image processor config ({exc}); save the folder with "
                "CLIPProcessor.save_pretrained so it holds one"
            ) from None
        finally:
            hf_logging.set_verbosity(level)
        encoder._image_processor = proc
    return proc


@torch.no_grad()
def image_embedding(encoder: TextEncoder, images: list, batch_size: int = 16) -> torch.Tensor:
    """RGB images → ``(N, D)`` L2-normalised CLIP image embeddings (CPU), through the
    ``clip:PATH`` encoder's ``CLIPModel`` and its folder's image processor."""
    require_clip(encoder, "an image prompt")
    proc, model = _image_processor(encoder), encoder.model
    out = []
    for i in range(0, len(images), batch_size):
        pixels = proc(images=images[i : i + batch_size], return_tensors="pt")["pixel_values"]
        pooled = model.vision_model(pixel_values=pixels.to(encoder.device)).pooler_output
        out.append(nn.functional.normalize(model.visual_projection(pooled).float(), dim=-1).cpu())
    return torch.cat(out)


def video_embedding(encoder: TextEncoder, frames: list) -> torch.Tensor:
    """The normalised mean ``(D,)`` of the frames' CLIP image embeddings."""
    return nn.functional.normalize(image_embedding(encoder, frames).mean(0), dim=-1)
