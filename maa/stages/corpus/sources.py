"""The corpus's raw material: Debian packages fetched, unpacked and read; SoundFonts rendered.

A package is looked for, in order, as an unpacked tree ``DEB_DIR/NAME/``, a ``NAME_*.deb`` in
``DEB_DIR`` or in the cache, and finally fetched with ``apt-get download NAME`` (no root install).
Only the files the rules want are unpacked (``dpkg-deb --fsys-tarfile`` streamed through
:mod:`tarfile`; without dpkg-deb the ``.deb`` ``ar`` archive is read directly when its data is
gzip/xz/bzip2-compressed), so a 1.4 GB game package costs only its sound files on disk.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf
import torch

from maa.audio import check_wave, load_audio, resample
from maa.errors import AudioError, MaaError
from maa.fsutil import write_json_atomic
from maa.stages.corpus.rules import Rule, RuleSet, norm_path, stable_hash

UNPACKED_MARKER = ".maa-unpacked.json"
APT_HINT = (
    "run on Debian/Ubuntu (apt-get download needs no root), or download the .deb yourself "
    "and pass --deb-dir DIR (a folder of NAME_*.deb files or unpacked NAME/ trees)"
)


class PackageUnavailable(Exception):
    """A package that could not be found, fetched or unpacked; the message says what to do."""


def find_deb(package: str, folders: list[Path]) -> Path | None:
    """The newest-named ``PACKAGE_*.deb`` in the first folder that has one."""
    for folder in folders:
        if folder.is_dir():
            debs = sorted(folder.glob(f"{package}_*.deb"))
            if debs:
                return debs[-1]
    return None


def apt_download(package: str, dest: Path) -> Path:
    """``apt-get download PACKAGE`` into ``dest``; raises :class:`PackageUnavailable`."""
    if shutil.which("apt-get") is None:
        raise PackageUnavailable(f"{package}: apt-get is not available here; {APT_HINT}")
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["apt-get", "download", package], cwd=dest, capture_output=True, text=True, check=False
    )
    deb = find_deb(package, [dest])
    if proc.returncode != 0 or deb is None:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.startswith("E:")]
        why = lines[-1] if lines else f"apt-get exited with {proc.returncode}"
        raise PackageUnavailable(f"{package}: apt-get download failed ({why}); {APT_HINT}")
    return deb


def _ar_data_member(deb: Path) -> tuple[str, IO[bytes]]:
    """Read a .deb's ``ar`` archive without dpkg-deb; returns (name, stream) of data.tar.*."""
    with deb.open("rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise PackageUnavailable(f"{deb}: not a Debian package (no ar header)")
        while len(header := f.read(60)) == 60:
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            if name.startswith("data.tar"):
                return name, io.BytesIO(f.read(size))
            f.seek(size + (size % 2), 1)
    raise PackageUnavailable(f"{deb}: no data.tar member found")


def _tar_stream(deb: Path) -> tuple[tarfile.TarFile, subprocess.Popen[bytes] | None]:
    if shutil.which("dpkg-deb"):
        proc = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(deb)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        return tarfile.open(fileobj=proc.stdout, mode="r|"), proc
    name, data = _ar_data_member(deb)
    modes = {".tar": "r|", ".gz": "r|gz", ".xz": "r|xz", ".bz2": "r|bz2"}
    mode = modes.get(Path(name).suffix)
    if mode is None:
        raise PackageUnavailable(
            f"{deb}: its {name} needs dpkg-deb to unpack; install dpkg or unpack it yourself "
            "and pass the tree as --deb-dir DIR/NAME/"
        )
    return tarfile.open(fileobj=data, mode=mode), None


def unpack(
    package: str, deb: Path, dest: Path, rules: RuleSet, log: Callable[[str], None] = print
) -> Path:
    """Unpack the files of ``deb`` that the rules want into ``dest`` (skipped when done).

    The marker file records the .deb and the patterns, so a changed rules file re-unpacks.
    """
    patterns = sorted({r.outer for r in rules.for_package(package)})
    stamp = {"deb": deb.name, "size": deb.stat().st_size, "patterns": patterns}
    marker = dest / UNPACKED_MARKER
    with contextlib.suppress(OSError, ValueError):  # no marker yet, or an unreadable one
        if json.loads(marker.read_text(encoding="utf-8")) == stamp:
            return dest
    log(f"{package}: unpacking the files the rules select from {deb.name}")
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tar, proc = _tar_stream(deb)
    try:
        for member in tar:
            name = norm_path(member.name)
            if not member.isfile() or ".." in Path(name).parts:
                continue
            if not rules.wants_file(package, name):
                continue
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except (tarfile.TarError, OSError) as exc:
        raise PackageUnavailable(f"{deb}: could not unpack ({exc})") from exc
    finally:
        tar.close()
        if proc is not None:
            proc.wait()
    if proc is not None and proc.returncode != 0:
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        raise PackageUnavailable(f"{deb}: dpkg-deb failed ({err or proc.returncode})")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    write_json_atomic(marker, stamp)
    return dest


def obtain_tree(
    package: str, cache: Path, deb_dir: Path | None, rules: RuleSet, log: Callable[[str], None]
) -> Path:
    """The unpacked tree of ``package`` (see the module docstring for the search order)."""
    if deb_dir is not None and (deb_dir / package).is_dir():
        return deb_dir / package
    folders = ([deb_dir] if deb_dir is not None else []) + [cache / "debs"]
    deb = find_deb(package, folders)
    if deb is None:
        log(f"{package}: fetching with apt-get download")
        deb = apt_download(package, cache / "debs")
    return unpack(package, deb, cache / "unpacked" / package, rules, log)


# ------------------------------------------------------------------------------ sources
class Item:
    """One source recording selected by a rule: a file, a zip member or a SoundFont render."""

    def __init__(self, rule: Rule, key: str, group: str, load: Callable[[int], torch.Tensor]):
        self.rule, self.key, self.group, self.load = rule, key, group, load


def _load_file(path: Path) -> Callable[[int], torch.Tensor]:
    return lambda sr: load_audio(path, sr)[0]


_ZIPS: dict[Path, zipfile.ZipFile] = {}


def _open_zip(archive: Path) -> zipfile.ZipFile:
    """Keep the last archive open: reading a 36 000-entry directory takes ~2 s each time."""
    if archive not in _ZIPS:
        for z in _ZIPS.values():
            z.close()
        _ZIPS.clear()
        _ZIPS[archive] = zipfile.ZipFile(archive)
    return _ZIPS[archive]


def _load_member(archive: Path, member: str) -> Callable[[int], torch.Tensor]:
    def load(sr: int) -> torch.Tensor:
        data = _open_zip(archive).read(member)
        try:
            wave_np, file_sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises several types for corrupt data
            raise AudioError(f"{archive}!{member}: could not decode audio ({exc})") from exc
        wave = torch.from_numpy(np.ascontiguousarray(wave_np.mean(axis=1)))
        check_wave(wave, f"{archive}!{member}")
        return resample(wave, int(file_sr), sr).clamp_(-1.0, 1.0)

    return load


def list_items(package: str, tree: Path, rules: RuleSet, seed: int) -> list[Item]:
    """Every recording of ``package`` that a rule selects, ``max_files`` applied (seeded)."""
    items: list[Item] = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        rel = path.relative_to(tree).as_posix()
        if rel.endswith(UNPACKED_MARKER):
            continue
        for rule in rules.for_package(package):
            if rule.is_soundfont and rule.category != "skip" and rules.match_outer(rule, rel):
                items.extend(soundfont_items(rule, path, rel, seed))
        if path.suffix.lower() == ".zip" and rules.wants_file(package, rel):
            with zipfile.ZipFile(path) as z:
                names = sorted(n for n in z.namelist() if not n.endswith("/"))
            for name in names:
                rule = rules.match(package, rel, name)
                if rule is not None and rule.category != "skip":
                    key = f"{rel}!{name}"
                    items.append(Item(rule, key, key, _load_member(path, name)))
            continue
        rule = rules.match(package, rel)
        if rule is not None and rule.category != "skip" and not rule.is_soundfont:
            items.append(Item(rule, rel, rel, _load_file(path)))
    return _cap_files(items, seed)


def _cap_files(items: list[Item], seed: int) -> list[Item]:
    by_rule: dict[int, list[Item]] = {}
    for item in items:
        by_rule.setdefault(id(item.rule), []).append(item)
    keep: set[str] = set()
    for group in by_rule.values():
        limit = group[0].rule.option("max_files")
        ranked = sorted(group, key=lambda it: stable_hash(seed, it.key))
        keep.update(it.key for it in (ranked[: int(limit)] if limit else ranked))
    return [it for it in items if it.key in keep]


# --------------------------------------------------------------------------- SoundFonts
def soundfont_items(rule: Rule, path: Path, rel: str, seed: int) -> list[Item]:
    """Notes and seeded phrases of one General-MIDI program, one item each.

    Split groups: a melodic program's notes are grouped by octave (SoundFont sample zones span
    about an octave, so different octaves mostly play different recordings); a percussion kit
    (bank 128) is one group because its phrases reuse every drum sample.
    """
    program = int(rule.option("program"))  # type: ignore[arg-type]
    bank = int(rule.option("bank", 0))  # type: ignore[arg-type]
    keys = tuple(rule.option("keys", (60,)))  # type: ignore[arg-type]
    hold = float(rule.option("hold", 1.5))  # type: ignore[arg-type]
    base = f"{rel}#bank{bank}/prog{program}"
    items = []
    for k in keys:
        group = base if bank == 128 else f"{base}/oct{k // 12}"
        events = [(0.0, k, hold)]
        items.append(Item(rule, f"{base}/key{k}", group, _render(path, bank, program, events)))
    for i in range(int(rule.option("phrases", 0))):  # type: ignore[arg-type]
        g = torch.Generator().manual_seed(stable_hash(seed, base, i) % (2**63))
        if bank == 128:
            pick = torch.randint(0, len(keys), (12,), generator=g).tolist()
            events = [(0.25 * j, keys[p], 0.2) for j, p in enumerate(pick)]
            group = base
        else:
            root = keys[int(torch.randint(0, len(keys), (1,), generator=g))]
            steps = torch.tensor([0, 2, 4, 5, 7, 9, 11])[torch.randint(0, 7, (8,), generator=g)]
            root12 = root - root % 12
            events = [(0.4 * j, root12 + int(s), 0.45) for j, s in enumerate(steps)]
            group = f"{base}/oct{root // 12}"
        items.append(Item(rule, f"{base}/phrase{i}", group, _render(path, bank, program, events)))
    return items


_SYNTHS: dict[tuple[str, int], tuple[object, int]] = {}


def _render(
    sf2: Path, bank: int, program: int, events: list[tuple[float, int, float]]
) -> Callable[[int], torch.Tensor]:
    """A loader that renders ``events`` (start s, MIDI key, held s) and adds a 1 s release."""

    def load(sr: int) -> torch.Tensor:
        try:
            import tinysoundfont
        except ImportError as exc:
            raise MaaError(
                "rendering SoundFont programs needs the tinysoundfont package: "
                "pip install --no-deps tinysoundfont"
            ) from exc
        cache_key = (str(sf2), sr)
        if cache_key not in _SYNTHS:  # loading a 140 MB SoundFont takes ~1 s: do it once
            _SYNTHS.clear()
            synth = tinysoundfont.Synth(samplerate=sr)
            _SYNTHS[cache_key] = (synth, synth.sfload(str(sf2)))
        synth, sfid = _SYNTHS[cache_key]
        synth.sounds_off()
        synth.program_select(0, sfid, bank, program, is_drums=bank == 128)
        timeline = sorted([(t, 1, k) for t, k, _ in events] + [(t + h, 0, k) for t, k, h in events])
        chunks, now = [], 0.0
        for t, on, key in timeline:
            if t > now:
                chunks.append(_generate(synth, round((t - now) * sr)))
                now = t
            if on:
                synth.noteon(0, key, 100)
            else:
                synth.noteoff(0, key)
        chunks.append(_generate(synth, sr))  # release tail
        wave = torch.from_numpy(np.concatenate(chunks))
        check_wave(wave, f"{sf2.name} bank {bank} program {program}", allow_silent=False)
        return wave.clamp_(-1.0, 1.0)

    return load


def _generate(synth: object, samples: int) -> np.ndarray:
    if samples <= 0:
        return np.zeros(0, dtype=np.float32)
    buf = np.frombuffer(synth.generate(samples), dtype=np.float32)  # type: ignore[attr-defined]
    return buf.reshape(-1, 2).mean(axis=1).copy()


def iter_windows(
    wave: torch.Tensor, sr: int, clip_seconds: float, max_windows: int
) -> Iterator[tuple[float, torch.Tensor]]:
    """``(offset seconds, clip)`` pairs: the whole clip when it is at most 1.5 clip lengths,
    else up to ``max_windows`` full windows spread evenly over the recording."""
    length = round(clip_seconds * sr)
    n = wave.shape[-1]
    if n <= 1.5 * length:
        yield 0.0, wave
        return
    count = min(n // length, max(1, max_windows))
    span = n - length
    for i in range(count):
        start = 0 if count == 1 else round(i * span / (count - 1))
        yield start / sr, wave[start : start + length]
