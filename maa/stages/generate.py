"""``maa generate``: one prompt to one file, or a prompt file to a folder plus a manifest.

:func:`generate` is the whole path: it checks the prompts and the output location, loads the
bundle, notes prompts far from the training categories, samples and writes. Batch mode reads
prompts from a text file (one per line; blank lines and ``#`` comments are skipped) or from a
manifest's ``caption`` column, names each output after its prompt (slugified, de-duplicated
with ``-2``, ``-3`` …) and writes ``generated.parquet`` listing every file with its prompt, seed,
CLAP score and sampling settings. Every input is checked before any model loads, and every
write is atomic, so a failure leaves no partial files. ``init_audio`` restyles a recording
(SDEdit), ``loop`` makes seamless loops, and a duration longer than the bundle's window is
generated window by window (:mod:`maa.edit`, :mod:`maa.inpaint`).
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from maa.audio import audio_info, write_audio
from maa.captions import read_captions
from maa.edit import (
    DEFAULT_STRENGTH,
    Panel,
    check_strength,
    load_input,
    loop_duration,
    loop_seam,
    mel_of,
    restyle,
    sample_loop,
    save_edit_png,
    window_frames,
)
from maa.errors import MaaError, ensure_free_space
from maa.generate import (
    OUT_OF_DOMAIN_COSINE,
    GeneratedAudio,
    Generator,
    SamplingSettings,
    bundle_categories,
    check_prompts,
    save_spectrogram_png,
)
from maa.inpaint import generate_long
from maa.manifest import read_manifest, write_manifest
from maa.stages.x_to_audio import check_inputs, video_duration

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MANIFEST_NAME = "generated.parquet"
# prompts sampled per Generator call in batch mode: bounds the audio held in memory and writes
# files as they come; prompt i still gets seed + i, as in one call
PROMPTS_PER_CALL = 8
NOTE_PROMPT_CHARS = 80  # a prompt echoed in a message is cut to this length
RESTYLE_SAMPLER = "ddim"  # --init-audio without --sampler, as Make-An-Audio's release


def generate(
    settings: SamplingSettings,
    prompt: str | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    prompts: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    bundle: str | os.PathLike[str] | None = None,
    png: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    vocoder: str | None = None,
    clap: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
    reuse_seed: bool = False,
    init_audio: str | os.PathLike[str] | None = None,
    strength: float | None = None,
    loop: bool = False,
    audio_prompt: str | os.PathLike[str] | None = None,
    audio_prompt_weight: float | None = None,
    image: str | os.PathLike[str] | None = None,
    video: str | os.PathLike[str] | None = None,
    video_fps: float | None = None,
    duration_from_video: bool = True,
    unset: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Generate ``prompt`` into ``output``, or every prompt of the file ``prompts`` into
    ``out_dir`` plus ``generated.parquet``, with ``bundle`` (default: the shipped one); ``png``
    adds spectrograms. Warnings and notes go to ``log``. Returns one row per written file
    (``audio_path``, ``caption``, ``duration`` s, ``sample_rate`` Hz, ``seed``, ``clap_score``,
    settings).

    ``init_audio`` restyles a recording (SDEdit, ``strength`` 0.3 by default; the clips last as
    long as it); ``loop`` makes seamless loops (rows add the seam measure ``seam_ratio``: flux
    across the wrap over the clip's median, and ``seam_p95_ratio``, the clip's own 95th
    percentile on the same scale). A duration longer than the bundle's training window is
    generated window by window (:func:`maa.inpaint.generate_long`).

    ``unset`` names the settings the user did not choose (of sampler, steps, guidance): the
    bundle's recorded defaults replace them (:meth:`Generator.with_defaults`).

    ``audio_prompt``, ``image`` and ``video`` condition on an example sound (mixed with the text
    prompt by ``audio_prompt_weight`` when one is given), a picture or a video's frames
    (``video_fps`` per second, default 1; the clip lasts as long as the video when
    ``duration_from_video``), for bundles trained for them (:mod:`maa.stages.x_to_audio`)."""
    batch = prompts is not None
    if batch and (prompt is not None or output is not None):
        raise MaaError("pass either PROMPT -o OUT or --prompts FILE --out-dir DIR, not both")
    if batch and out_dir is None:
        raise MaaError("--prompts needs --out-dir DIR for the generated files")
    x_given = any(v is not None for v in (audio_prompt, image, video))
    if not batch and prompt is None and not x_given:
        raise MaaError("pass a PROMPT (and -o OUT.wav), or --prompts FILE --out-dir DIR")
    if not batch and output is None:
        raise MaaError("pass -o OUT.wav to say where to write the audio")
    if strength is not None and init_audio is None:
        raise MaaError("--strength needs --init-audio FILE (the recording to restyle)")
    if init_audio is not None and loop:
        raise MaaError("--loop makes a new clip; it does not combine with --init-audio")
    if init_audio is not None:
        strength = check_strength(DEFAULT_STRENGTH if strength is None else strength)
        audio_info(init_audio)  # a missing or unreadable file fails before any model loads
    text_given = batch or prompt is not None
    x = check_inputs(
        bundle or (default_bundle() if x_given else None), settings, text_given=text_given,
        batch=batch, audio_prompt=audio_prompt, audio_prompt_weight=audio_prompt_weight,
        image=image, video=video, video_fps=video_fps,
    )  # fmt: skip
    texts = read_captions(prompts, "--prompts") if batch else check_prompts(prompt or x.label)
    if batch:
        folder = Path(out_dir)
        check_writable(folder if folder.exists() else folder.parent, f"--out-dir {folder}")
        names = unique_names(texts, ".wav")
    else:
        output = check_output(output)
        folder, names = output.parent, [output.name]
    gen = Generator.from_bundle(
        bundle or default_bundle(), device=device, dtype=dtype, vocoder=vocoder, clap=clap
    )
    settings = gen.with_defaults(settings, unset)
    if getattr(gen.vocoder, "warning", None):
        log(f"warning: {gen.vocoder.warning}")
    if text_given and (note := out_of_domain_note(gen, texts, bundle)):
        log(note)
    if x.given:
        gen = x.condition(gen, texts if text_given else None)
    if x.video is not None and duration_from_video:
        settings = replace(settings, duration=video_duration(x))
    init = load_input(init_audio, gen.mel, log) if init_audio is not None else None
    if init is not None:  # the release's SDEdit sampled with DDIM
        sampler = RESTYLE_SAMPLER if "sampler" in unset else settings.sampler
        duration = init.numel() / gen.mel.sample_rate
        settings = replace(settings, duration=duration, sampler=sampler)
    if loop:
        settings = replace(settings, duration=loop_duration(gen, settings.duration))
    folder.mkdir(exist_ok=True)
    how = {k: getattr(settings, k) for k in ("steps", "guidance", "sampler", "candidates")}
    if settings.negative_prompt:
        how["negative_prompt"] = settings.negative_prompt
    if init is not None:
        how.update(init_audio=str(init_audio), strength=strength)
    if loop:
        how["loop"] = True
    how.update(x.how())
    manifest = folder / MANIFEST_NAME
    if batch and reuse_seed and (earlier := _earlier_seed(manifest, names)) is not None:
        settings = replace(settings, seed=earlier)
    rows = _finished(manifest, names, texts, settings, how) if batch else {}
    pending = [i for i in range(len(texts)) if i not in rows]
    if rows:
        log(f"resuming: {len(rows)} of {len(texts)} clip(s) already in {manifest}")
    sr = gen.mel.sample_rate
    per_clip = int(settings.duration * sr) * 2 + 44 + (200_000 if png else 0)  # PCM16 + header
    ensure_free_space(folder, per_clip * len(pending), f"{len(pending)} generated clip(s)")
    for run in _runs(pending, PROMPTS_PER_CALL):
        clips = _sample(gen, [texts[i] for i in run], settings, run[0], init, strength, loop)
        for i, clip in zip(run, clips, strict=True):
            path = folder / names[i]
            write_audio(path, clip.wave, clip.sr)
            if png:
                _picture(path.with_suffix(".png"), clip, gen, init, strength, loop)
            rows[i] = {
                "audio_path": names[i], "caption": clip.prompt,
                "duration": clip.wave.numel() / clip.sr, "sample_rate": clip.sr,
                "source": "maa generate", "split": "test", "seed": clip.seed,
                "clap_score": clip.clap_score, **how,
            }  # fmt: skip
            if loop:
                seam = loop_seam(clip.wave, gen.mel)
                rows[i].update(seam_ratio=seam.ratio, seam_p95_ratio=seam.p95 / seam.median)
        if batch:  # a record after every call: an interrupted run resumes from here
            write_manifest(pd.DataFrame([rows[i] for i in sorted(rows)]), manifest)
    return pd.DataFrame([rows[i] for i in sorted(rows)])


def _sample(
    gen: Generator,
    prompts: list[str],
    settings: SamplingSettings,
    seed_offset: int,
    init: torch.Tensor | None,
    strength: float | None,
    loop: bool,
) -> list[GeneratedAudio]:
    """One clip per prompt: restyled from ``init``, a loop, window by window when longer than
    the bundle's window, or plain text-to-audio."""
    if init is not None:
        return restyle(gen, prompts, settings, init, strength, seed_offset)
    if loop:
        return sample_loop(gen, prompts, settings, seed_offset)
    if gen.mel.frames_for_seconds(settings.duration) > window_frames(gen):
        return generate_long(gen, prompts, settings, seed_offset)
    return gen.sample(prompts, settings, seed_offset=seed_offset)


def _picture(
    path: Path,
    clip: GeneratedAudio,
    gen: Generator,
    init: torch.Tensor | None,
    strength: float | None,
    loop: bool,
) -> None:
    """The clip's spectrogram; restyled: input above output; a loop: played twice."""
    if init is None and not loop:
        save_spectrogram_png(path, clip.mel, gen.mel)
        return
    if loop:
        panels = [Panel("the loop played twice (it wraps at the middle)",
                        mel_of(gen, torch.cat([clip.wave, clip.wave])))]  # fmt: skip
    else:
        panels = [Panel("input", mel_of(gen, init)),
                  Panel(f"output (strength {strength:g})", mel_of(gen, clip.wave))]  # fmt: skip
    save_edit_png(path, panels, gen.mel)


def _runs(indices: list[int], size: int) -> list[list[int]]:
    """Consecutive indices in runs of at most ``size`` (a prompt's seed follows its index)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1 and len(runs[-1]) < size:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _earlier_seed(manifest: Path, names: list[str]) -> int | None:
    """The base seed of an earlier batch run into the same folder (its row ``i`` has seed
    ``base + i``), or None."""
    try:
        old = read_manifest(manifest, validate_schema=False) if manifest.is_file() else None
    except MaaError:
        return None
    index = {n: i for i, n in enumerate(names)}
    for name, seed in zip(old["audio_path"], old["seed"], strict=True) if old is not None else ():
        if name in index:
            return int(seed) - index[name]
    return None


def _finished(
    manifest: Path, names: list[str], texts: list[str], settings: SamplingSettings, how: dict
) -> dict[int, dict]:
    """Rows of an earlier run into the same folder that this run would write identically (same
    file name, prompt, seed, duration and settings, and the audio file still there), by index."""
    if not manifest.is_file():
        return {}
    try:
        old = read_manifest(manifest, validate_schema=False)
    except MaaError:
        return {}  # unreadable: regenerate everything, the manifest is rewritten
    found = {}
    by_name = {n: i for i, n in enumerate(names)}
    for row in old.to_dict("records"):
        i = by_name.get(row.get("audio_path"))
        if i is None or row.get("caption") != texts[i] or row.get("seed") != settings.seed + i:
            continue
        negative = row.get("negative_prompt")
        same = all(row.get(k) == v for k, v in how.items())
        same = same and (settings.negative_prompt or not isinstance(negative, str) or not negative)
        same = same and abs(float(row.get("duration", -1)) - settings.duration) < 0.05
        if same and (manifest.parent / names[i]).is_file():
            found[i] = row
    return found


def out_of_domain_note(
    gen: Generator, texts: list[str], bundle: str | os.PathLike[str] | None
) -> str | None:
    """One line when a prompt is far from every category the bundle was trained on."""
    nearest = gen.nearest_categories(texts)
    far = [(t, n) for t, n in zip(texts, nearest, strict=True) if n and n[1] < OUT_OF_DOMAIN_COSINE]
    if not far:
        return None
    which = "--list-categories" + (f" --bundle {bundle}" if bundle else "")
    text, (cat, sim) = far[0]
    if len(text) > NOTE_PROMPT_CHARS:
        text = text[: NOTE_PROMPT_CHARS - 1].rstrip() + "…"
    what = f"{text!r} is" if len(far) == 1 else f"{len(far)} prompts (e.g. {text!r}) are"
    return (
        f"note: {what} far from the {len(gen.categories)} sound categories this "
        f"model was trained on (nearest: {cat}, similarity {sim:.2f}); it still generates, "
        f"but expect a loose match. See them with `maa generate {which}` or MODEL_CARD.md."
    )


def default_bundle() -> Path:
    """The bundle shipped with maa, or an error saying to pass ``--bundle``."""
    from maa.system import ASSETS

    path = ASSETS / "default_bundle"
    if not (path / "bundle.json").is_file():
        raise MaaError(
            "no default bundle is shipped with this installation; pass --bundle DIR "
            "(a folder trained with `maa train-vae` and `maa train-ldm`)"
        )
    return path


def categories(bundle: str | os.PathLike[str] | None) -> tuple[Path, dict[str, dict]]:
    """The bundle's folder and the sound categories its U-Net was trained on (never empty)."""
    from maa.bundle import Bundle

    b = Bundle.open(bundle or default_bundle())
    cats = bundle_categories(b)
    if not cats:
        raise MaaError(
            f"{b.root}: the bundle records no categories (its training manifest had no "
            "'category' column)"
        )
    return b.root, cats


def slugify(text: str, max_len: int = 60) -> str:
    """A file-name stem from a prompt: ASCII lower-case words joined by ``_``."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for w in words:
        nxt = f"{slug}_{w}" if slug else w
        if len(nxt) > max_len:
            break
        slug = nxt
    return slug or (words[0][:max_len] if words else "prompt")


def unique_names(prompts: list[str], suffix: str) -> list[str]:
    """One distinct file name per prompt: ``slug.wav``, ``slug-2.wav``, …"""
    seen: dict[str, int] = {}
    names = []
    for p in prompts:
        stem = slugify(p)
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        names.append(f"{stem}{'' if n == 1 else f'-{n}'}{suffix}")
    return names


def check_writable(folder: Path, what: str) -> None:
    """Fail early, before any sampling, when ``folder`` is missing or cannot be written."""
    if not folder.is_dir():
        raise MaaError(f"{what}: folder {folder} does not exist; create it or choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".maa-write-test-", dir=folder)
    except OSError as exc:
        raise MaaError(f"{what}: cannot write in {folder} ({exc.strerror})") from exc
    os.close(fd)
    os.unlink(probe)


def check_output(path: str | os.PathLike[str]) -> Path:
    """Validate a single output file path (suffix, existing writable folder)."""
    path = Path(path)
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise MaaError(f"-o {path}: unsupported audio format; end the name in .wav, .flac or .ogg")
    if path.is_dir():
        raise MaaError(f"-o {path}: is a folder; pass a file name such as {path / 'out.wav'}")
    check_writable(path.parent, f"-o {path}")
    return path
