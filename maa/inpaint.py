"""Inpainting, continuation, long clips and super-resolution: masks over an input, for any bundle.

A mask is built on the mel grid (frames × bins: time spans, optionally limited to a frequency
band), mapped to the latent grid (a latent cell is generated when any mel cell it covers is) and
filled zero-shot by :class:`maa.edit.LatentEdit`. The output keeps the input: outside the mask the
original waveform is pasted back, with short crossfades at the edges, so samples outside every
span are the input's own (bit for bit at the bundle's rate); a band keeps the input's STFT outside
the band. Continuation is outpainting in overlapping windows (the tail of what exists is the
known prefix of the next window), which also makes clips longer than one window; super-resolution
inpaints the mel bins above a cutoff.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import torch

from maa.dsp import hz_to_mel, mel_to_hz
from maa.edit import (
    LatentEdit,
    encode_wave,
    latent_frames,
    latent_grid,
    mel_of,
    time_dim,
    window_frames,
)
from maa.errors import MaaError
from maa.generate import GeneratedAudio, Generator, SamplingSettings, loudness_normalize
from maa.mel import MelPreset

CROSSFADE_S = 0.05  # at each edge of a span, inside it, the input fades into the generated sound
CONTEXT = 0.5  # share of each continuation window that is known audio (the rest is new)
# the new part of a continuation window starts from the context's average spectrum noised to this
# strength, not from pure noise: measured on the default bundle (README), from pure noise the
# continuation's level drifted 1.4-1.5 (rain) and 2.7 (music) log-mel units from its context, from
# the fill 0.0 and 0.5, while its content stays new (the fill is stationary noise)
CONTINUE_STRENGTH = 0.9
BAND_RAMP_HZ = 250.0  # width of the STFT crossfade at a band's edges
WINDOW_SEED_STEP = 100_003  # window k of a clip samples with seed + k × this
SUPER_RESOLVE_TOP = 0.25  # AudioLDM regenerates the top quarter of the mel bins by default

Span = tuple[float, float]


def parse_range(text: str, option: str) -> Span:
    """``"1.0:2.5"`` → ``(1.0, 2.5)``, or an error naming ``option`` and the expected form."""
    parts = str(text).split(":")
    try:
        lo, hi = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi)):
        unit, example = ("Hz", "4000:8000") if option == "--band" else ("s", "1.0:2.5")
        raise MaaError(f"{option} {text!r}: expected START:END in {unit}, e.g. {example}")
    return lo, hi


def check_spans(
    spans: list[Span], duration: float, name: str = "the input",
    log: Callable[[str], None] | None = None,
) -> list[Span]:  # fmt: skip
    """Spans in seconds checked against a ``duration``-second input, sorted, with overlapping ones
    merged (said through ``log``) and one reaching past the end cut there. A span of zero length,
    one starting before 0 or at or after the end is an error."""
    if not spans:
        raise MaaError("pass at least one --span START:END (seconds) to regenerate")
    checked = []
    for a, b in spans:
        text = f"--span {a:g}:{b:g}"
        if b <= a:
            what = "has zero length" if b == a else "ends before it starts"
            raise MaaError(f"{text} {what}; pass START:END with END > START, e.g. 1.0:2.5")
        if a < 0 or a >= duration:
            raise MaaError(f"{text} lies outside {name} ({duration:.2f} s long)")
        if b > duration:
            if log is not None and b > duration + 1e-3:
                log(f"note: {text} reaches past the end of {name}; cut at {duration:.2f} s")
            b = duration
        checked.append((float(a), float(b)))
    merged: list[Span] = []
    for a, b in sorted(checked):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            if log is not None:
                lo, hi = merged[-1]
                log(f"note: overlapping spans merged into --span {lo:g}:{hi:g}")
        else:
            merged.append((a, b))
    return merged


def mel_bin_centres(mel: MelPreset) -> torch.Tensor:
    """Centre frequency (Hz) of each mel bin ``(n_mels,)``."""
    edges = torch.linspace(float(hz_to_mel(mel.f_min)), float(hz_to_mel(mel.f_max)), mel.n_mels + 2)
    return torch.from_numpy(mel_to_hz(edges.double().numpy())[1:-1]).float()


def check_band(band: Span, mel: MelPreset) -> Span:
    """A frequency band ``(lo, hi)`` Hz checked against the bundle's mel preset."""
    lo, hi = band
    nyquist = mel.sample_rate / 2
    if lo < 0 or hi <= lo:
        raise MaaError(f"--band {lo:g}:{hi:g}: pass LOW:HIGH in Hz with 0 ≤ LOW < HIGH")
    if hi > nyquist:
        raise MaaError(
            f"--band {lo:g}:{hi:g} reaches above the Nyquist frequency ({nyquist:g} Hz at the "
            f"bundle's {mel.sample_rate} Hz); pass HIGH ≤ {nyquist:g}"
        )
    centres = mel_bin_centres(mel)
    if not ((centres >= lo) & (centres <= hi)).any():
        raise MaaError(
            f"--band {lo:g}:{hi:g}: no mel bin of the bundle lies in it (its mel covers "
            f"{mel.f_min:g}–{mel.f_max:g} Hz in {mel.n_mels} bins); widen the band"
        )
    return float(lo), float(hi)


def mel_mask(spans: list[Span], band: Span | None, frames: int, mel: MelPreset) -> torch.Tensor:
    """``(n_mels, frames)`` mask, 1 on every frame a span touches (all bins, or the bins whose
    centre lies in ``band``)."""
    per_frame = mel.hop_length / mel.sample_rate
    cols = torch.zeros(frames, dtype=torch.bool)
    for a, b in spans:
        cols[math.floor(a / per_frame + 1e-9) : math.ceil(b / per_frame - 1e-9)] = True
    rows = torch.ones(mel.n_mels, dtype=torch.bool)
    if band is not None:
        centres = mel_bin_centres(mel)
        rows = (centres >= band[0]) & (centres <= band[1])
    return (rows[:, None] & cols[None, :]).float()


def time_weights(n: int, spans: list[tuple[int, int]], fade: int, inside: bool = True):
    """``(n,)`` weights of the generated sound: 1 in each span of samples, 0 outside, with linear
    crossfades of ``fade`` samples at span edges within the input (none at its ends), placed
    inside the span (``inside``) or outside it (continuation: the span holds no input)."""
    w = torch.zeros(n)
    for s0, s1 in spans:
        w[s0:s1] = 1.0
    for s0, s1 in spans:
        room = (s1 - s0) // 2
        ramps = []
        if s0 > 0 and (lead := min(fade, room if inside else s0)) > 0:
            ramps.append((s0 if inside else s0 - lead, torch.arange(1, lead + 1) / (lead + 1)))
        if s1 < n and (tail := min(fade, room if inside else n - s1)) > 0:
            ramps.append((s1 - tail if inside else s1, torch.arange(tail, 0, -1) / (tail + 1)))
        for at, ramp in ramps:  # outside a span, a ramp never lowers a neighbouring span
            seg = w[at : at + ramp.numel()]
            w[at : at + ramp.numel()] = ramp if inside else torch.maximum(seg, ramp)
    return w


def band_blend(original: torch.Tensor, generated: torch.Tensor, band: Span, mel: MelPreset):
    """``generated`` inside ``band`` Hz and ``original`` outside it (STFT, crossfaded over
    ``BAND_RAMP_HZ`` at the band's edges), as one ``(T,)`` waveform."""
    n_fft, hop, sr = mel.n_fft, mel.hop_length, mel.sample_rate
    window = torch.hann_window(n_fft)
    spec = [torch.stft(w.float(), n_fft, hop, window=window, return_complex=True)
            for w in (original, generated)]  # fmt: skip
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1)[:, None]
    lo, hi = band
    b = torch.ones_like(freqs)
    if lo > 0:
        b = b * ((freqs - lo) / BAND_RAMP_HZ + 0.5).clamp(0, 1)
    if hi < sr / 2:
        b = b * ((hi - freqs) / BAND_RAMP_HZ + 0.5).clamp(0, 1)
    mixed = spec[0] * (1 - b) + spec[1] * b
    return torch.istft(mixed, n_fft, hop, window=window, length=original.numel())


def paste_back(
    original: torch.Tensor,
    generated: torch.Tensor,
    spans: list[tuple[int, int]],
    mel: MelPreset,
    band: Span | None = None,
    fade: int = 0,
    inside: bool = True,
) -> torch.Tensor:
    """The output of an edit: ``original (T,)`` wherever the weights of :func:`time_weights` are
    0 (the very samples), ``generated`` where they are 1, a crossfade between; with a ``band``,
    the generated part keeps the original's STFT outside the band."""
    n = original.numel()
    generated = torch.nn.functional.pad(generated[:n], (0, max(0, n - generated.numel())))
    if band is not None:
        generated = band_blend(original, generated, band, mel)
    w = time_weights(n, spans, fade, inside)
    out = original.clone()
    sel = w > 0
    out[sel] = original[sel] * (1 - w[sel]) + generated[sel] * w[sel]
    return out


@dataclass
class EditResult:
    """An edited clip (``clip.wave`` the output), the input's log-mel ``(n_mels, F_in)``, the
    mel-grid mask ``(n_mels, F_out)`` (1 = regenerated) and the output's log-mel."""

    clip: GeneratedAudio
    input_mel: torch.Tensor
    mask: torch.Tensor
    output_mel: torch.Tensor

    def outside_l1(self) -> float:
        """Mean |log-mel(output) − log-mel(input)| over the mel cells the mask keeps."""
        frames = min(self.input_mel.shape[-1], self.output_mel.shape[-1], self.mask.shape[-1])
        keep = self.mask[:, :frames] == 0
        diff = (self.output_mel[:, :frames] - self.input_mel[:, :frames]).abs()
        return float(diff[keep].mean()) if keep.any() else 0.0


def inpaint(
    gen: Generator,
    wave: torch.Tensor,
    prompt: str,
    spans: list[Span],
    settings: SamplingSettings,
    band: Span | None = None,
    seed_offset: int = 0,
    *,
    crossfade: float = CROSSFADE_S,
    fade_inside: bool = True,
    strength: float = 1.0,
) -> EditResult:
    """Regenerate the ``spans`` (seconds; within ``band`` Hz if given) of ``wave (T,)`` (at the
    bundle's rate) with ``prompt``, zero-shot; ``settings.candidates`` are ranked by the CLAP after
    the input is pasted back. The output has the input's length and level. ``strength`` < 1
    starts the masked region from the input's content there noised to that strength (SDEdit)
    instead of from pure noise."""
    sr, mel = gen.mel.sample_rate, gen.mel
    duration = wave.numel() / sr
    spans = check_spans(spans, duration)
    band = check_band(band, mel) if band is not None else None
    frames = latent_frames(gen, duration)
    known, input_mel = encode_wave(gen, wave, frames)
    mask = mel_mask(spans, band, frames, mel)
    samples = [(round(a * sr), round(b * sr)) for a, b in spans]
    finisher = partial(paste_back, wave.float().cpu(), spans=samples, mel=mel, band=band,
                       fade=round(crossfade * sr), inside=fade_inside)  # fmt: skip
    start = settings.steps - max(1, min(int(settings.steps * strength), settings.steps))
    edit = LatentEdit(gen.unet.config.in_channels, known=known, mask=latent_grid(mask, gen),
                      start=start, dim=time_dim(gen), finisher=finisher)  # fmt: skip
    settings = replace(settings, duration=duration, normalize=False)
    [clip] = gen.sample([prompt], settings, seed_offset, edit=edit)
    out_mel = mel_of(gen, clip.wave)
    return EditResult(clip, input_mel, mask[:, : out_mel.shape[-1]], out_mel)


def continue_audio(
    gen: Generator,
    wave: torch.Tensor,
    prompt: str,
    seconds: float,
    settings: SamplingSettings,
    seed_offset: int = 0,
    window: int | None = None,
) -> EditResult:
    """Extend ``wave (T,)`` by ``seconds`` with ``prompt``: windows of ``window`` mel frames (the
    bundle's training crop) whose first ``CONTEXT`` share is the tail of what exists, the rest
    outpainted from noise shaped like the tail's average spectrum (:func:`spectral_fill`,
    SDEdit at ``CONTINUE_STRENGTH``). The input is kept except its last ``CROSSFADE_S`` seconds,
    which fade into the model's copy of them; window ``k`` samples with seed
    ``seed + k × WINDOW_SEED_STEP``."""
    if not seconds > 0:
        raise MaaError(f"--seconds must be positive, got {seconds}")
    sr, hop = gen.mel.sample_rate, gen.mel.hop_length
    win = (window or window_frames(gen)) * hop
    target = wave.numel() + round(seconds * sr)
    fade = round(CROSSFADE_S * sr)
    out, scores, k = wave.float().cpu(), [], 0
    input_mel = mel_of(gen, out)
    while out.numel() < target:
        ctx = min(out.numel(), max(fade, round(win * CONTEXT)))
        new = min(target - out.numel(), win - ctx)
        tail = out[-ctx:]
        step = replace(settings, seed=settings.seed + k * WINDOW_SEED_STEP)
        fill = spectral_fill(tail, new, gen.mel, step.seed + seed_offset)
        span = [(ctx / sr, (ctx + new) / sr)]
        res = inpaint(gen, torch.cat([tail, fill]), prompt, span, step, None, seed_offset,
                      fade_inside=False, strength=CONTINUE_STRENGTH)  # fmt: skip
        out = torch.cat([out[: out.numel() - ctx], res.clip.wave])
        scores.append(res.clip.clap_score)
        k += 1
    out_mel = mel_of(gen, out)
    mask = torch.zeros_like(out_mel)
    mask[:, input_mel.shape[-1] :] = 1.0
    score = sum(scores) / len(scores) if scores and None not in scores else None
    clip = GeneratedAudio(out, sr, prompt, settings.seed + seed_offset, score, out_mel)
    return EditResult(clip, input_mel, mask, out_mel)


def spectral_fill(tail: torch.Tensor, n: int, mel: MelPreset, seed: int) -> torch.Tensor:
    """``n`` samples of stationary noise with the average STFT magnitude of ``tail (T,)`` and its
    RMS (random phases, seeded): where a continuation starts, the level and timbre of what came
    before without repeating any of its events."""
    n_fft, hop = mel.n_fft, mel.hop_length
    window = torch.hann_window(n_fft)
    spec = torch.stft(tail.float(), n_fft, hop, window=window, return_complex=True)
    frames = n // hop + 2
    phase = torch.rand(spec.shape[0], frames, generator=torch.Generator().manual_seed(seed))
    mag = spec.abs().mean(dim=-1, keepdim=True).expand(-1, frames)
    noise = torch.istft(torch.polar(mag, 2 * math.pi * phase), n_fft, hop, window=window, length=n)
    rms = noise.pow(2).mean().sqrt()
    return noise * (tail.pow(2).mean().sqrt() / rms) if rms > 0 else noise


def generate_long(
    gen: Generator, prompts: list[str], settings: SamplingSettings, seed_offset: int = 0
) -> list[GeneratedAudio]:
    """Clips longer than one window (the bundle's training crop): the first window is generated,
    the rest continued window by window (:func:`continue_audio`), so later audio follows what came
    before instead of repeating one texture. ``clap_score`` (with candidates) averages the first
    window's and the continuation's (itself the mean over its windows)."""
    sr, hop = gen.mel.sample_rate, gen.mel.hop_length
    window = window_frames(gen)
    first_s = window * hop / sr
    out = []
    for i, prompt in enumerate(prompts):
        head = replace(settings, duration=first_s, normalize=False)
        [first] = gen.sample([prompt], head, seed_offset + i)
        wave, score = first.wave[: round(settings.duration * sr)], first.clap_score
        if (rest := round(settings.duration * sr) - first.wave.numel()) > 0:
            later = replace(settings, seed=first.seed + WINDOW_SEED_STEP)
            res = continue_audio(gen, first.wave, prompt, rest / sr, later, 0, window)
            wave, scores = res.clip.wave, [first.clap_score, res.clip.clap_score]
            score = None if None in scores else (scores[0] + scores[1]) / 2
        wave = loudness_normalize(wave, sr) if settings.normalize else wave.clamp(-1, 1)
        out.append(GeneratedAudio(wave, sr, prompt, first.seed, score, mel_of(gen, wave)))
    return out


def default_cutoff(input_rate: int, mel: MelPreset) -> float:
    """The cutoff (Hz) above which :func:`super_resolve` regenerates by default: the input's
    Nyquist frequency when it lies inside the mel range, else the lowest centre of the top
    quarter of the mel bins (AudioLDM's choice)."""
    if input_rate / 2 < mel.f_max:
        return input_rate / 2
    centres = mel_bin_centres(mel)
    return float(centres[math.floor(mel.n_mels * (1 - SUPER_RESOLVE_TOP))])


def check_super_resolve(
    cutoff: float, mel: MelPreset, prompt: str, settings: SamplingSettings
) -> None:
    """Errors for a cutoff outside the mel range, or candidates with no prompt to rank them by."""
    if not 0 < cutoff < mel.f_max:
        raise MaaError(
            f"--cutoff {cutoff:g} Hz: pass a frequency between 0 and the bundle's mel top "
            f"{mel.f_max:g} Hz (only mel bins above the cutoff are regenerated)"
        )
    if not prompt and settings.candidates > 1:
        raise MaaError("--candidates > 1 needs a --prompt for the CLAP to rank them by")


def super_resolve(
    gen: Generator,
    wave: torch.Tensor,
    settings: SamplingSettings,
    cutoff: float,
    prompt: str = "",
    seed_offset: int = 0,
) -> EditResult:
    """Regenerate everything above ``cutoff`` Hz of ``wave (T,)`` (bandwidth extension); the
    input's own spectrum below the cutoff is kept. Without a prompt only the conditional pass on
    the empty text runs."""
    mel = gen.mel
    check_super_resolve(cutoff, mel, prompt, settings)
    if not prompt:  # the conditional and unconditional passes would be the same
        settings = replace(settings, guidance=1.0)
    duration = wave.numel() / mel.sample_rate
    return inpaint(gen, wave, prompt, [(0.0, duration)], settings,
                   (float(cutoff), mel.sample_rate / 2), seed_offset)  # fmt: skip
