"""Dynamic reprogramming (the paper's pseudo prompt enhancement, part 2): compose new pairs.

An original (audio, caption) pair is combined with 0–2 sampled single-event clips by caption
templates — concatenation ("{a} before {b}", "{a} followed by {b}", "{b} after {a}") and mixing
("{a} and {b}", "{a} with {b} in the background") — loudness-matched by RMS, mixed at a random
SNR, joined with short cross-fades and kept within a maximum duration.

* :func:`compose` — two waveforms and a template → one waveform (pure, seeded by a generator).
* :class:`Reprogrammer` — samples events and templates for one original pair; what
  ``maa train-ldm --reprogram`` calls per item with a per-epoch generator (no files written).
* :func:`reprogram` — the static mode: writes composed clips (wav) and a manifest with
  ``template`` and ``components``; resumable.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from maa.audio import load_audio, write_audio
from maa.errors import MaaError, check_count
from maa.manifest import audio_paths, read_manifest, relative_to, write_manifest, write_side_table
from maa.progress import ProgressBar

CONCAT_TEMPLATES = ("{a} before {b}", "{a} followed by {b}", "{b} after {a}")
MIX_TEMPLATES = ("{a} and {b}", "{a} with {b} in the background")
TEMPLATES = CONCAT_TEMPLATES + MIX_TEMPLATES
TARGET_RMS = 0.1  # -20 dBFS: both parts are matched to this before the SNR gain
PEAK_LIMIT = 0.99
MIN_PART_SECONDS = 0.25  # shortest part a template may use (enough to be heard as an event)


class ShortClipError(MaaError):
    """A clip is shorter than a template needs."""


@dataclass
class Composed:
    """The result of :func:`compose`.

    ``wave`` ``(T,)`` is the sum of ``tracks`` ``(2, T)`` (part ``a`` then part ``b``, each
    placed, gained and faded). ``snr_db`` is the power ratio a:b over each part's own samples
    (0 dB for concatenation, where both are loudness-matched).
    """

    wave: torch.Tensor
    tracks: torch.Tensor
    snr_db: float


def render_caption(template: str, a: str, b: str) -> str:
    """Fill a template; the part that does not start the sentence loses its capital/period."""
    a, b = _clean_caption(a), _clean_caption(b)
    first_is_a = template.startswith("{a}")
    a = a if first_is_a else _lower_first(a)
    b = b if not first_is_a else _lower_first(b)
    return template.format(a=a, b=b)


def compose(
    a: torch.Tensor,
    b: torch.Tensor,
    template: str,
    rng: torch.Generator,
    sr: int,
    max_seconds: float = 10.0,
    snr_db_range: tuple[float, float] = (-5.0, 5.0),
    crossfade_ms: float = 20.0,
    min_part_seconds: float = MIN_PART_SECONDS,
) -> Composed:
    """Compose ``a`` and ``b`` (``(T,)`` mono at ``sr`` Hz) as ``template`` says.

    Concatenation puts ``a`` first (also for "{b} after {a}"), cross-faded over
    ``crossfade_ms``; when the sum is longer than ``max_seconds`` both parts are cropped at
    random offsets, each keeping at least half the budget (or all of itself). Mixing overlays
    ``b`` on ``a`` at an SNR drawn uniformly from ``snr_db_range`` dB: "{a} and {b}" places the
    shorter part at a random offset within the longer one; "{a} with {b} in the background"
    keeps ``a``'s length and loops or crops ``b`` under it. Parts are RMS-matched before the
    SNR gain; if the mix would clip, everything is scaled down together (the SNR is kept).

    Raises:
        ShortClipError: a part is shorter than ``min_part_seconds`` (or two cross-fades).
    """
    if template not in TEMPLATES:
        raise MaaError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")
    limit = max(1, int(max_seconds * sr))
    xf = max(0, int(crossfade_ms * sr / 1000))
    need = max(int(min_part_seconds * sr), 2 * xf + 1)
    a, b = a.float().reshape(-1), b.float().reshape(-1)
    for name, part in (("a", a), ("b", b)):
        if part.numel() < need:
            raise ShortClipError(
                f"part {name} lasts {part.numel() / sr:.3f} s; template {template!r} needs "
                f"at least {need / sr:.3f} s"
            )
    if template in CONCAT_TEMPLATES:
        la, lb = _share(a.numel(), b.numel(), limit + xf)
        a, b = _crop(a, la, rng), _crop(b, lb, rng)
        total = la + lb - xf
        tracks = torch.zeros(2, total)
        tracks[0, :la] = _fade(a, xf, fade_in=False) if xf else a
        tracks[1, la - xf :] = _fade(b, xf, fade_out=False) if xf else b
        snr = 0.0
    else:
        if template == "{a} and {b}":
            total = min(max(a.numel(), b.numel()), limit)
            a, b = _crop(a, min(a.numel(), total), rng), _crop(b, min(b.numel(), total), rng)
        else:  # b in the background: a sets the length, b loops under it
            total = min(a.numel(), limit)
            a = _crop(a, total, rng)
            b = _crop(b.repeat(math.ceil(total / b.numel()) + 1), total, rng)
        tracks = torch.zeros(2, total)
        for i, part in enumerate((a, b)):
            off = _randint(rng, total - part.numel() + 1)
            tracks[i, off : off + part.numel()] = _fade(part, xf)
        lo, hi = snr_db_range
        snr = lo + (hi - lo) * float(torch.rand((), generator=rng))
    gains = [_rms_gain(tracks[0]), _rms_gain(tracks[1]) * 10.0 ** (-snr / 20.0)]
    tracks = tracks * torch.tensor(gains).unsqueeze(1)
    wave = tracks.sum(0)
    peak = float(wave.abs().max())
    if peak > PEAK_LIMIT:
        tracks, wave = tracks * (PEAK_LIMIT / peak), wave * (PEAK_LIMIT / peak)
    return Composed(wave=wave, tracks=tracks, snr_db=snr)


@dataclass
class Composition:
    """One reprogrammed example.

    ``wave`` ``(T,)`` at the reprogrammer's rate; ``caption`` the templated text; ``template``
    the templates applied, one per added event joined by " | ", written with ``{a}`` = the
    composition so far and ``{b}`` = the new event ("" when none was added); ``components`` the
    source audio paths (original first, as given); ``snr_db`` one per added event (0 for a
    concatenation); ``skipped`` why fewer events than drawn were added (non-strict mode).
    """

    wave: torch.Tensor
    caption: str
    template: str
    components: list[str]
    snr_db: list[float] = field(default_factory=list)
    skipped: str | None = None

    @property
    def n_extra(self) -> int:
        return max(0, len(self.components) - 1)


@dataclass(frozen=True)
class ReprogramConfig:
    """How examples are composed. SNRs in dB (foreground over the added part), times in s."""

    sample_rate: int = 16000
    max_seconds: float = 10.0
    min_extra: int = 0
    max_extra: int = 2
    mix_snr_db: tuple[float, float] = (-5.0, 5.0)
    background_snr_db: tuple[float, float] = (5.0, 15.0)
    crossfade_ms: float = 20.0
    min_event_seconds: float = MIN_PART_SECONDS
    templates: tuple[str, ...] = TEMPLATES


class Reprogrammer:
    """Samples 0..max_extra single-event clips and templates for an original pair.

    Build it with :meth:`from_manifests`; call :meth:`sample` per item with a generator (e.g.
    ``maa.trainer.item_generator(seed, epoch, index)``): the same generator state gives the
    same composition, a new epoch's generator a new one. Event audio is read lazily and a few
    hundred clips are cached per process.
    """

    def __init__(
        self,
        events: pd.DataFrame,
        config: ReprogramConfig,
        pairs: pd.DataFrame | None = None,
        cache_size: int = 256,
    ):
        self.events = events.reset_index(drop=True)
        self.pairs = pairs
        self.config = config
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def from_manifests(
        cls,
        pairs_df: pd.DataFrame | None,
        events_df: pd.DataFrame,
        sr: int,
        max_seconds: float = 10.0,
        max_extra: int = 2,
        **config: object,
    ) -> Reprogrammer:
        """From read manifests (``read_manifest``): usable events are rows with a caption, at
        least ``min_event_seconds`` long and not themselves composed (no ``template``, at most
        one ``components`` entry). None usable is an error saying why each was rejected."""
        cfg = ReprogramConfig(
            sample_rate=int(sr), max_seconds=max_seconds, max_extra=max_extra, **config
        )  # type: ignore[arg-type]
        if not 0 <= cfg.min_extra <= cfg.max_extra:
            raise MaaError(
                f"need 0 <= min_extra <= max_extra, got {cfg.min_extra}, {cfg.max_extra}"
            )
        ev = _with_paths(events_df)
        empty = ev["caption"].astype(str).str.strip() == ""
        short = ev["duration"].astype(float) < cfg.min_event_seconds
        composed = pd.Series(False, index=ev.index)
        if "template" in ev.columns:
            composed |= ev["template"].fillna("").astype(str) != ""
        if "components" in ev.columns:
            composed |= ev["components"].map(lambda c: c is not None and len(c) > 1)
        usable = ev[~(empty | short | composed)]
        if usable.empty and cfg.max_extra > 0:
            raise MaaError(
                f"the event manifest has no usable single-event clips ({len(ev)} rows: "
                f"{int(empty.sum())} with an empty caption, {int(short.sum())} shorter than "
                f"{cfg.min_event_seconds} s, {int(composed.sum())} already composed); pass a "
                "manifest of captioned single-event clips"
            )
        return cls(usable, cfg, None if pairs_df is None else _with_paths(pairs_df))

    def load(self, path: str) -> torch.Tensor:
        """A clip ``(T,)`` at the configured rate, cropped to ``max_seconds`` (cached)."""
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        wave, _ = load_audio(path, self.config.sample_rate)
        wave = wave[: int(self.config.max_seconds * self.config.sample_rate)]
        self._cache[path] = wave
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return wave

    def sample(
        self,
        index_wave: torch.Tensor,
        index_caption: str,
        generator: torch.Generator,
        index_path: str | None = None,
        strict: bool = False,
    ) -> Composition:
        """Compose the original ``(T,)`` wave (at ``config.sample_rate``) with sampled events.

        The number of events is uniform over ``min_extra..max_extra``; each step picks an event,
        a template and whether the running composition plays part ``a`` or ``b``. With
        ``strict=False`` (training), a part too short for the template or an unreadable event
        stops there: the composition so far (possibly the original alone) comes back with
        ``skipped`` set; ``strict=True`` raises. ``index_wave`` must be at
        ``config.sample_rate``; ``index_path`` is recorded as the first component.
        """
        cfg, sr = self.config, self.config.sample_rate
        wave = index_wave.float().reshape(-1)[: int(cfg.max_seconds * sr)]
        comp = Composition(wave, _clean_caption(index_caption), "", [index_path or ""])
        n = cfg.min_extra + _randint(generator, cfg.max_extra - cfg.min_extra + 1)
        for _ in range(n):
            row = self.events.iloc[_randint(generator, len(self.events))]
            template = cfg.templates[_randint(generator, len(cfg.templates))]
            original_first = _randint(generator, 2) == 0
            try:
                event = self.load(row["_path"])
                a, b = (comp.wave, event) if original_first else (event, comp.wave)
                ca, cb = (comp.caption, row["caption"]) if original_first else (
                    row["caption"], comp.caption)  # fmt: skip
                snr = cfg.background_snr_db if "background" in template else cfg.mix_snr_db
                out = compose(
                    a, b, template, generator, sr, cfg.max_seconds, snr, cfg.crossfade_ms,
                    cfg.min_event_seconds,
                )  # fmt: skip
            except MaaError as exc:
                if strict:
                    raise
                comp.skipped = str(exc)
                return comp
            step = template if original_first else _swap(template)
            comp = Composition(
                out.wave,
                render_caption(template, ca, cb),
                f"{comp.template} | {step}" if comp.template else step,
                [*comp.components, row["_path"]],
                [*comp.snr_db, out.snr_db],
            )
        return comp

    def sample_pair(self, index: int, generator: torch.Generator, strict: bool = True):
        """Compose pair ``index`` of the pairs manifest (static mode)."""
        if self.pairs is None:
            raise MaaError("this Reprogrammer was built without a pairs manifest")
        row = self.pairs.iloc[index]
        wave = self.load(row["_path"])
        return self.sample(wave, str(row["caption"]), generator, row["_path"], strict=strict)


def _with_paths(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a read manifest with each row's audio file in ``_path``."""
    return df.assign(_path=[str(p) for p in audio_paths(df)])


def _share(la: int, lb: int, budget: int) -> tuple[int, int]:
    """Lengths for two parts within ``budget`` samples: each keeps min(itself, half)."""
    if la + lb <= budget:
        return la, lb
    half = budget // 2
    if la <= half:
        return la, budget - la
    if lb <= half:
        return budget - lb, lb
    return half, budget - half


def _crop(wave: torch.Tensor, length: int, rng: torch.Generator) -> torch.Tensor:
    off = _randint(rng, wave.numel() - length + 1)
    return wave[off : off + length]


def _fade(wave: torch.Tensor, n: int, fade_in: bool = True, fade_out: bool = True) -> torch.Tensor:
    """Linear fades of ``n`` samples; complementary ramps make a cross-fade sum to one."""
    n = min(n, wave.numel() // 2)
    if n <= 0:
        return wave
    wave = wave.clone()
    ramp = (torch.arange(n, dtype=wave.dtype) + 0.5) / n
    if fade_in:
        wave[:n] *= ramp
    if fade_out:
        wave[-n:] *= ramp.flip(0)
    return wave


def _rms_gain(track: torch.Tensor) -> float:
    """Gain bringing the track's RMS over its own (non-zero) samples to :data:`TARGET_RMS`."""
    count = int(torch.count_nonzero(track))
    rms = math.sqrt(float(track.square().sum()) / count) if count else 0.0
    return TARGET_RMS / rms if rms > 1e-5 else 1.0  # never boost silence into noise


def _randint(rng: torch.Generator, n: int) -> int:
    return int(torch.randint(0, max(1, n), (), generator=rng))


def _swap(template: str) -> str:
    return template.replace("{a}", "{_}").replace("{b}", "{a}").replace("{_}", "{b}")


def _clean_caption(text: str) -> str:
    return " ".join(str(text).split()).rstrip(" .")


def _lower_first(text: str) -> str:
    # Keep acronyms ("TV", "DJ") and proper nouns that look like acronyms as they are.
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


# ------------------------------------------------------------------------------ static mode
@dataclass
class ReprogramSummary:
    """What :func:`reprogram` did: rows written, skips recorded, seconds of audio composed."""

    out: Path
    written: int
    resumed: int
    skipped: int
    seconds: float
    elapsed: float
    skipped_path: Path | None = None


def reprogram(
    manifest: str | Path,
    events: str | Path,
    out: str | Path,
    audio_out: str | Path,
    n: int | None = None,
    max_extra: int = 2,
    seed: int = 0,
    *,
    min_extra: int = 1,
    sample_rate: int | None = None,
    max_seconds: float = 10.0,
    save_every: int = 50,
    progress: bool = True,
) -> ReprogramSummary:
    """Write ``n`` composed clips (default: one per original pair) and their manifest.

    Item ``j`` uses its own generator seeded from ``(seed, j)``: it picks an original pair,
    ``min_extra..max_extra`` events and templates, so a resumed run (items already in ``out``
    are skipped) gives the same clips as an uninterrupted one. Items that cannot be composed
    (an original shorter than a template needs, an unreadable file) are recorded with the reason
    in ``NAME.skipped.parquet`` and the rest goes on. The manifest is rewritten atomically every
    ``save_every`` items; clips are wav files ``audio_out/reprogram_<j>.wav``.
    """
    if n is not None:
        check_count("--n", n)
    check_count("--min-extra", min_extra, minimum=0)
    check_count("--max-extra", max_extra, minimum=0)
    check_count("--save-every", save_every)
    pairs = read_manifest(manifest)
    if pairs.empty:
        raise MaaError(f"{manifest}: the manifest has no rows to reprogram")
    sr = int(sample_rate or pairs["sample_rate"].mode().iloc[0])
    events_df = read_manifest(events)
    rp = Reprogrammer.from_manifests(
        pairs, events_df, sr, max_seconds, max_extra, min_extra=min(min_extra, max_extra)
    )
    out, audio_out = Path(out), Path(audio_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    audio_out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = read_manifest(out).to_dict("records") if out.is_file() else []
    done = {int(r["index"]) for r in rows}
    resumed = len(rows)
    skips: list[dict] = []
    n = len(pairs) if n is None else int(n)
    todo = [j for j in range(n) if j not in done]
    t0 = time.perf_counter()

    def flush() -> Path | None:
        if rows:
            write_manifest(pd.DataFrame(rows).sort_values("index", kind="stable"), out)
        return write_side_table(skips, out, "skipped")

    # Composition is element-wise work on short tensors: intra-op threads only add overhead
    # (many times over on a busy machine), so compose single-threaded and restore after.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ProgressBar(progress, "clips") as bar:
            bar("reprogram", 0, len(todo))
            for count, j in enumerate(todo, 1):
                gen = torch.Generator().manual_seed((seed * 1_000_003 + j) % (2**63))
                idx = _randint(gen, len(pairs))
                try:
                    comp = rp.sample_pair(idx, gen, strict=True)
                except MaaError as exc:
                    skips.append({"index": j, "audio_path": str(pairs["audio_path"].iloc[idx]),
                                  "reason": str(exc)})  # fmt: skip
                else:
                    wav = write_audio(audio_out / f"reprogram_{j:07d}.wav", comp.wave, sr)
                    rows.append({
                        "audio_path": relative_to(wav, out.parent),
                        "caption": comp.caption,
                        "duration": comp.wave.numel() / sr,
                        "sample_rate": sr,
                        "source": "reprogram",
                        "split": str(pairs["split"].iloc[idx]),
                        "template": comp.template,
                        "components": [relative_to(c, out.parent) for c in comp.components],
                        "index": j,
                    })  # fmt: skip
                bar("reprogram", count, len(todo))
                if count % save_every == 0:
                    flush()
    finally:
        torch.set_num_threads(threads)
    skipped_path = flush()
    return ReprogramSummary(
        out=out,
        written=len(rows) - resumed,
        resumed=resumed,
        skipped=len(skips),
        seconds=sum(r["duration"] for r in rows[resumed:]),
        elapsed=time.perf_counter() - t0,
        skipped_path=skipped_path,
    )
