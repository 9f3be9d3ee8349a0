"""``maa generate``: one prompt to one file, or a prompt file to a folder plus a manifest.

Batch mode reads prompts from a text file (one per line; blank lines and ``#`` comments are
skipped) or from a manifest's ``caption`` column, names each output after its prompt
(slugified, de-duplicated with ``-2``, ``-3`` …) and writes ``generated.parquet`` listing every
file with its prompt, seed, CLAP score and sampling settings. Output locations are checked before
any sampling starts, and every write is atomic, so a failure leaves no partial files.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import pandas as pd

from maa.audio import write_audio
from maa.errors import MaaError
from maa.generate import (
    DEFAULT_GUIDANCE,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    Generator,
    check_prompts,
    save_spectrogram_png,
)
from maa.manifest import write_manifest

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
MANIFEST_NAME = "generated.parquet"
# sampling settings recorded in the manifest (the Generator's defaults unless overridden)
DEFAULT_SETTINGS = {
    "steps": DEFAULT_STEPS,
    "guidance": DEFAULT_GUIDANCE,
    "sampler": DEFAULT_SAMPLER,
    "candidates": 1,
}


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


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    """Prompts from a text file (one per line) or a Parquet manifest (``caption`` column)."""
    path = Path(path)
    if not path.is_file():
        raise MaaError(f"--prompts {path}: no such file; pass a text file or a manifest")
    if path.suffix.lower() == ".parquet":
        from maa.manifest import read_manifest

        df = read_manifest(path, validate_schema=False)
        if "caption" not in df.columns:
            raise MaaError(f"{path}: manifest has no 'caption' column to take prompts from")
        prompts = [str(c) for c in df["caption"] if isinstance(c, str) and c.strip()]
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise MaaError(f"{path}: not a UTF-8 text file ({exc})") from exc
        prompts = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not prompts:
        raise MaaError(f"{path}: holds no prompts (one per line, or a manifest 'caption' column)")
    return prompts


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
    check_writable(path.parent if str(path.parent) else Path("."), f"-o {path}")
    return path


def generate_one(
    gen: Generator, prompt: str, output: str | os.PathLike[str], png: bool = False, **kwargs: Any
):
    """Generate ``prompt`` into ``output`` (and ``output.png`` with ``png``); returns the clip."""
    output = check_output(output)
    [clip] = gen.generate([prompt], **kwargs)
    write_audio(output, clip.wave, clip.sr)
    if png:
        save_spectrogram_png(output.with_suffix(".png"), clip.mel, gen.mel)
    return clip


def generate_batch(
    gen: Generator,
    prompts: list[str],
    out_dir: str | os.PathLike[str],
    png: bool = False,
    suffix: str = ".wav",
    seed: int | None = None,
    prompts_per_call: int = 8,
    **kwargs: Any,
) -> pd.DataFrame:
    """Generate every prompt into ``out_dir`` and write its manifest; returns the manifest.

    Prompt ``i`` uses seed ``seed + i``, so a batch run reproduces single runs with those seeds.
    """
    prompts = check_prompts(prompts)
    out = Path(out_dir)
    if not out.exists() and out.parent.is_dir():
        out.mkdir()
    check_writable(out, f"--out-dir {out}")
    if suffix not in AUDIO_SUFFIXES:
        raise MaaError(f"unsupported audio format {suffix!r}; use .wav, .flac or .ogg")
    if seed is None:
        import random

        seed = random.SystemRandom().randrange(2**31)
    names = unique_names(prompts, suffix)
    settings = {**DEFAULT_SETTINGS, **{k: v for k, v in kwargs.items() if k in DEFAULT_SETTINGS}}
    if kwargs.get("negative_prompt"):
        settings["negative_prompt"] = kwargs["negative_prompt"]
    rows = []
    for i in range(0, len(prompts), prompts_per_call):
        clips = gen.generate(prompts[i : i + prompts_per_call], seed=seed + i, **kwargs)
        for name, clip in zip(names[i : i + prompts_per_call], clips, strict=True):
            write_audio(out / name, clip.wave, clip.sr)
            if png:
                save_spectrogram_png((out / name).with_suffix(".png"), clip.mel, gen.mel)
            rows.append(
                {
                    "audio_path": name,
                    "caption": clip.prompt,
                    "duration": clip.wave.numel() / clip.sr,
                    "sample_rate": clip.sr,
                    "source": "maa generate",
                    "split": "test",
                    "seed": clip.seed,
                    "clap_score": clip.clap_score,
                    **settings,
                }
            )
    df = pd.DataFrame(rows)
    write_manifest(df, out / MANIFEST_NAME)
    return df
