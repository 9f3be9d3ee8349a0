"""``maa inpaint``, ``maa continue`` and ``maa super-resolve``: edit a recording with any bundle.

Each stage checks the input file, its options and the output path before any model loads, opens
one :class:`~maa.generate.Generator` on the bundle (the shipped default when none is given),
runs the edit (:mod:`maa.inpaint`) and writes the result — and with ``png`` the input, mask and
output spectrograms one above the other — atomically. The output keeps the input's level; outside
the mask it is the input's own audio. Each returns an :class:`EditSummary` with what it measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from maa.audio import audio_info, write_audio
from maa.bundle import Bundle
from maa.edit import Panel, load_input, save_edit_png
from maa.errors import MaaError, ensure_free_space
from maa.generate import INPAINT_UNET, Generator, SamplingSettings, check_prompts
from maa.inpaint import (
    EditResult,
    Span,
    check_band,
    check_spans,
    check_super_resolve,
    continue_audio,
    default_cutoff,
    inpaint,
    parse_range,
    super_resolve,
)
from maa.mel import MelPreset
from maa.stages.generate import check_output, default_bundle

PNG_BYTES = 400_000  # room left for a picture in the free-space check


@dataclass(frozen=True)
class EditSummary:
    """What an editing stage wrote and measured: the output file, its length (s) and rate (Hz),
    the seed, the CLAP score of the kept candidate (None without reranking), the mean log-mel L1
    between output and input over the mel cells the mask keeps, the edit's wall time (s, model
    loading excluded) and the picture, if any."""

    output: Path
    duration: float
    sample_rate: int
    seed: int
    clap_score: float | None
    outside_l1: float
    seconds: float
    png: Path | None = None


@dataclass
class _Opened:
    gen: Generator
    wave: torch.Tensor
    output: Path
    started: float


def _open(
    audio: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    bundle: str | os.PathLike[str] | None,
    extra_seconds: float,
    options: dict,
    log: Callable[[str], None],
) -> _Opened:
    """The free space for the output checked, then the generator and the input loaded."""
    seconds = audio_info(audio).duration + extra_seconds
    need = int(seconds * _preset(bundle).sample_rate) * 2 + 44 + PNG_BYTES  # PCM16 + picture
    ensure_free_space(Path(output).parent, need, "the edited clip")
    gen = Generator.from_bundle(bundle or default_bundle(), **options)
    if getattr(gen.vocoder, "warning", None):
        log(f"warning: {gen.vocoder.warning}")
    wave = load_input(audio, gen.mel, log)
    return _Opened(gen, wave, Path(output), time.perf_counter())


def _preset(bundle: str | os.PathLike[str] | None) -> MelPreset:
    return Bundle.open(bundle or default_bundle()).mel


def _checked_output(output: str | os.PathLike[str] | None) -> Path:
    if output is None:
        raise MaaError("pass -o OUT.wav to say where to write the audio")
    return check_output(output)


def _finish(opened: _Opened, res: EditResult, png: bool, what: str) -> EditSummary:
    """Write the result (and picture); the summary of the edit."""
    seconds = time.perf_counter() - opened.started
    clip, gen = res.clip, opened.gen
    write_audio(opened.output, clip.wave, clip.sr)
    picture, l1 = None, res.outside_l1()
    if png:
        panels = [
            Panel("input", res.input_mel),
            Panel(f"mask (white: {what})", res.mask, is_mask=True),
            Panel(f"output (log-mel L1 outside the mask {l1:.3f})", res.output_mel),
        ]
        picture = save_edit_png(opened.output.with_suffix(".png"), panels, gen.mel)
    return EditSummary(
        opened.output, clip.wave.numel() / clip.sr, clip.sr, clip.seed, clip.clap_score,
        l1, seconds, picture,
    )  # fmt: skip


def inpaint_file(
    settings: SamplingSettings,
    audio: str | os.PathLike[str],
    prompt: str,
    output: str | os.PathLike[str] | None,
    spans: list[str | Span],
    band: str | Span | None = None,
    *,
    bundle: str | os.PathLike[str] | None = None,
    png: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    vocoder: str | None = None,
    clap: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> EditSummary:
    """Regenerate the ``spans`` (``"START:END"`` seconds; overlapping ones merged) of ``audio``
    with ``prompt``, within ``band`` (``"LOW:HIGH"`` Hz) if given, into ``output``."""
    [prompt] = check_prompts(prompt)
    spans = [parse_range(s, "--span") if isinstance(s, str) else s for s in spans or []]
    band = parse_range(band, "--band") if isinstance(band, str) else band
    output = _checked_output(output)
    info = audio_info(audio)
    if not spans and band is None:
        raise MaaError("pass at least one --span START:END (seconds) or a --band LOW:HIGH (Hz)")
    spans = check_spans(spans or [(0.0, info.duration)], info.duration, str(audio), log)
    if band is not None:
        band = check_band(band, _preset(bundle))
    # the bundle's inpainting U-Net (`train-ldm --task inpaint`) when it has one
    trained = Bundle.open(bundle or default_bundle()).has(INPAINT_UNET)
    options = dict(device=device, dtype=dtype, vocoder=vocoder, clap=clap,
                   unet=INPAINT_UNET if trained else "unet")  # fmt: skip
    opened = _open(audio, output, bundle, 0.0, options, log)
    spans = check_spans(spans, opened.wave.numel() / opened.gen.mel.sample_rate)
    res = inpaint(opened.gen, opened.wave, prompt, spans, settings, band)
    return _finish(opened, res, png, "regenerated")


def continue_file(
    settings: SamplingSettings,
    audio: str | os.PathLike[str],
    prompt: str,
    output: str | os.PathLike[str] | None,
    seconds: float,
    *,
    bundle: str | os.PathLike[str] | None = None,
    png: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    vocoder: str | None = None,
    clap: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> EditSummary:
    """Extend ``audio`` by ``seconds`` with ``prompt`` (window by window) into ``output``."""
    [prompt] = check_prompts(prompt)
    if not seconds > 0:
        raise MaaError(f"--seconds must be positive, got {seconds}")
    output = _checked_output(output)
    options = dict(device=device, dtype=dtype, vocoder=vocoder, clap=clap)
    opened = _open(audio, output, bundle, seconds, options, log)
    res = continue_audio(opened.gen, opened.wave, prompt, seconds, settings)
    return _finish(opened, res, png, "generated")


def super_resolve_file(
    settings: SamplingSettings,
    audio: str | os.PathLike[str],
    output: str | os.PathLike[str] | None,
    cutoff: float | None = None,
    prompt: str | None = None,
    *,
    bundle: str | os.PathLike[str] | None = None,
    png: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    vocoder: str | None = None,
    clap: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> EditSummary:
    """Regenerate the mel bins above ``cutoff`` Hz of ``audio`` (default: the file's Nyquist
    frequency when it is below the bundle's mel top, else the top quarter of the mel bins) into
    ``output``; ``prompt`` optionally describes the sound."""
    prompt = check_prompts(prompt)[0] if prompt is not None else ""
    output = _checked_output(output)
    info = audio_info(audio)
    mel = _preset(bundle)
    if cutoff is None:
        cutoff = default_cutoff(info.sample_rate, mel)
        log(f"note: regenerating above {cutoff:.0f} Hz (pass --cutoff HZ to choose)")
    check_super_resolve(cutoff, mel, prompt, settings)
    options = dict(device=device, dtype=dtype, vocoder=vocoder, clap=clap)
    opened = _open(audio, output, bundle, 0.0, options, log)
    res = super_resolve(opened.gen, opened.wave, settings, cutoff, prompt)
    return _finish(opened, res, png, "regenerated")
