"""Fault injection: full disks, read-only folders, killed and corrupted checkpoints, corrupted
manifests, two writers. Each must end in one clear line and exit code 2 with no file damaged.

A full disk is a real 2 MB tmpfs where this machine lets the tests mount one (root in a
sandbox); elsewhere the same tests inject ``ENOSPC``/``EROFS`` into the atomic-write path.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from maa.cli.app import app
from maa.errors import ResourceError, system_error
from maa.testing import tiny_bundle

runner = CliRunner()
GEN = ["--duration", "1", "--steps", "1", "--vocoder", "griffin-lim", "--device", "cpu"]
TRAIN_VAE = ["--preset", "tiny", "--batch-size", "2", "--crop-frames", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("faults") / "bundle", with_clap=False)


def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s file system until only ``leave`` bytes are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    (folder / "filler").write_bytes(b"\0" * max(0, free - leave))


class Disk:
    """An output folder whose file system is full (``real``) or whose writes fail with ``code``."""

    def __init__(self, folder: Path, real: bool, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder, self.real, self._mp = folder, real, monkeypatch

    def fill(self, leave: int = 4096, code: int = errno.ENOSPC) -> None:
        if self.real:
            _fill(self.folder, leave)
            return

        def refuse(*args, **kwargs):
            raise OSError(code, os.strerror(code))

        self._mp.setattr("maa.fsutil.os.replace", refuse)


@pytest.fixture
def disk(tmp_path, monkeypatch):
    folder = tmp_path / "small"
    real = _mount(folder, "size=2m")
    yield Disk(folder, real, monkeypatch)
    if real:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _one_line_error(result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    # one error line, the last thing printed (warnings about the run may come before it)
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    for w in words:
        assert w in errors[0], (w, errors[0])
    return errors[0]


def _wav(path: Path, seconds: float = 0.5) -> bytes:
    sf.write(path, np.full(int(22050 * seconds), 0.25, dtype=np.float32), 22050)
    return path.read_bytes()


def test_generate_on_a_full_disk_stops_before_sampling(disk, bundle):
    old = _wav(disk.folder / "out.wav")
    disk.fill(leave=20_000)
    res = runner.invoke(app, ["generate", "rain", "-o", str(disk.folder / "out.wav"),
                              "--bundle", str(bundle), *GEN])  # fmt: skip
    if disk.real:
        _one_line_error(res, "not enough free space", "generated clip", "free")
    else:
        _one_line_error(res, "the disk is full", "nothing was overwritten")
    assert (disk.folder / "out.wav").read_bytes() == old
    assert not list(disk.folder.glob(".*.tmp"))


def test_generate_write_failing_on_a_full_disk_keeps_the_old_file(disk, bundle, monkeypatch):
    """The write itself fails (libsndfile says only "System error"): the real cause is named."""
    monkeypatch.setattr("maa.stages.generate.ensure_free_space", lambda *a: None)
    old = _wav(disk.folder / "out.wav")
    disk.fill(leave=8_000)
    res = runner.invoke(app, ["generate", "rain", "-o", str(disk.folder / "out.wav"),
                              "--bundle", str(bundle), *GEN])  # fmt: skip
    _one_line_error(res, "the disk is full", "nothing was overwritten")
    assert (disk.folder / "out.wav").read_bytes() == old
    assert not list(disk.folder.glob(".*.tmp"))


def test_manifest_scan_on_a_full_disk(disk, clip_dir):
    old = disk.folder / "m.parquet"
    old.write_bytes(b"previous manifest")
    disk.fill(leave=1_000)
    res = runner.invoke(app, ["manifest", "scan", str(clip_dir), "-o", str(old)])
    _one_line_error(res, "the disk is full")
    assert old.read_bytes() == b"previous manifest"


def test_train_vae_on_a_full_disk_fails_before_training(disk, clip_manifest):
    disk.fill(leave=50_000)
    out = disk.folder / "vae"
    res = runner.invoke(app, ["train-vae", "--manifest", str(clip_manifest), "--out", str(out),
                              "--max-steps", "2", *TRAIN_VAE])  # fmt: skip
    if disk.real:
        _one_line_error(res, "not enough free space for training checkpoints")
        assert not out.exists()  # a failed start leaves nothing behind
    else:  # injected: the checkpoint write itself fails
        _one_line_error(res, "the disk is full")


def test_read_only_output_folder(tmp_path, bundle, monkeypatch):
    folder = tmp_path / "ro"
    mounted = _mount(folder, "size=1m,ro")
    if not mounted:
        folder.mkdir(exist_ok=True)

        def refuse(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr("maa.stages.generate.tempfile.mkstemp", refuse)
    try:
        res = runner.invoke(app, ["generate", "rain", "-o", str(folder / "out.wav"),
                                  "--bundle", str(bundle), *GEN])  # fmt: skip
        _one_line_error(res, "Read-only file system")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_os_refusals_become_one_line():
    for code, words in [(errno.EMFILE, "too many open files"), (errno.EACCES, "permission"),
                        (errno.EROFS, "read-only"), (errno.ENOSPC, "disk is full")]:  # fmt: skip
        exc = RuntimeError("wrapped")
        exc.__cause__ = OSError(code, os.strerror(code), "/data/x.wav")
        found = system_error(exc)
        assert isinstance(found, ResourceError) and words in str(found)
        assert str(found).startswith("/data/x.wav: ")
    assert system_error(ValueError("a bug")) is None


# -- training checkpoints ---------------------------------------------------------------------
KILL_AT_SECOND_SAVE = """
import os, signal, sys
import torch
import maa.trainer as trainer
saves = []
real_save = torch.save
def save(obj, f, *a, **k):
    saves.append(f)
    if len(saves) == 2:  # half a file, then the process dies mid-write
        with open(f, "wb") as fh:
            fh.write(b"partial" * 100)
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *a, **k)
trainer.torch.save = save
from maa.cli.app import main
sys.argv = ["maa", *sys.argv[1:]]
main()
"""


def _vae_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(out / "vae.safetensors")


def test_sigkill_during_a_checkpoint_write_then_resume(clip_manifest, tmp_path):
    args = ["train-vae", "--manifest", str(clip_manifest), "--max-steps", "6",
            "--ckpt-every", "2", "--seed", "3", *TRAIN_VAE]  # fmt: skip
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_AT_SECOND_SAVE, *args, "--out", str(killed)],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-2000:]
    state = killed / "train" / "vae" / "state.pt"
    assert torch.load(state, weights_only=True)["step"] == 2  # the step-2 checkpoint is intact
    res = runner.invoke(app, [*args, "--out", str(killed), "--resume"])
    assert res.exit_code == 0, res.output
    straight = tmp_path / "straight"
    assert runner.invoke(app, [*args, "--out", str(straight)]).exit_code == 0
    a, b = _vae_weights(killed), _vae_weights(straight)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("content", "words"), [(b"", "the file is empty (0 bytes)"),
                                                (b"not a checkpoint", "unreadable")])  # fmt: skip
def test_corrupted_checkpoint_is_one_line(clip_manifest, tmp_path, content, words):
    out = tmp_path / "run"
    args = ["train-vae", "--manifest", str(clip_manifest), "--out", str(out), "--max-steps", "2",
            "--ckpt-every", "1", *TRAIN_VAE]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    state = out / "train" / "vae" / "state.pt"
    state.write_bytes(content)
    weights = (out / "vae.safetensors").read_bytes()
    res = runner.invoke(app, [*args[: -len(TRAIN_VAE)], "--max-steps", "4", *TRAIN_VAE, "--resume"])
    _one_line_error(res, str(state), words)
    assert state.read_bytes() == content and (out / "vae.safetensors").read_bytes() == weights


def test_corrupted_manifest_and_failed_start_leave_nothing(clip_manifest, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    out = tmp_path / "new_bundle"
    res = runner.invoke(app, ["train-vae", "--manifest", str(bad), "--out", str(out),
                              "--max-steps", "2", *TRAIN_VAE])  # fmt: skip
    _one_line_error(res, str(bad))
    assert not out.exists()
    # fewer items than one batch: the input check fails after the bundle was begun
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    args = ["train-vae", "--manifest", str(clip_manifest), "--out", str(existing), "--max-steps",
            "2", "--preset", "tiny", "--batch-size", "64", "--device", "cpu"]  # fmt: skip
    _one_line_error(runner.invoke(app, args), "fewer than one batch")
    assert sorted(p.name for p in existing.rglob("*")) == ["notes.txt"]


def _writer(path: str, value: float, n: int) -> None:
    from maa.audio import write_audio

    for _ in range(n):
        write_audio(path, torch.full((4410,), value), 22050)


def test_two_processes_writing_one_output_never_mix(tmp_path):
    """Every version a reader sees is one writer's whole file (atomic rename), never a blend."""
    path = tmp_path / "same.wav"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), v, 40)) for v in (0.25, -0.5)]
    for p in procs:
        p.start()
    seen = set()
    while any(p.is_alive() for p in procs):
        if path.exists():
            data, _ = sf.read(path, dtype="float32")
            assert len(data) == 4410
            seen.add(round(float(data.min()), 3))
            assert data.min() == data.max()  # one writer's constant, not a mix
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert not list(tmp_path.glob(".*.tmp"))
    assert seen <= {0.25, -0.5}


def test_batch_generation_resumes_after_the_disk_filled(bundle, tmp_path, monkeypatch):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("rain\nthunder\na dog barking\nwind\n")
    out = tmp_path / "batch"
    args = ["generate", "--prompts", str(prompts), "--out-dir", str(out),
            "--bundle", str(bundle), *GEN]  # fmt: skip
    monkeypatch.setattr("maa.stages.generate.PROMPTS_PER_CALL", 1)
    import maa.stages.generate as stage

    real_write, calls = stage.write_audio, []

    def write_then_fill(path, *a, **k):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write(path, *a, **k)

    monkeypatch.setattr(stage, "write_audio", write_then_fill)
    _one_line_error(runner.invoke(app, args), "the disk is full")
    done = sorted(p.name for p in out.glob("*.wav"))
    assert len(done) == 2
    stamps = {n: (out / n).stat().st_mtime_ns for n in done}
    monkeypatch.setattr(stage, "write_audio", real_write)
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "resuming: 2 of 4" in res.output
    assert len(list(out.glob("*.wav"))) == 4
    assert all((out / n).stat().st_mtime_ns == t for n, t in stamps.items())  # not redone


# -- rough edges: too-short audio, counts, long prompts ---------------------------------------
def test_audio_shorter_than_one_latent_frame_names_the_minimum(tmp_path, bundle):
    short = tmp_path / "short.wav"
    sf.write(short, np.full(1024, 0.1, dtype=np.float32), 22050)  # 4 mel frames
    minimum = "shorter than one latent frame (2048 samples = 0.093 s at 22050 Hz)"
    res = runner.invoke(app, ["vocode", str(short), "-o", str(tmp_path / "v.wav")])
    _one_line_error(res, str(short), minimum)
    res = runner.invoke(app, ["reconstruct", str(short), "-o", str(tmp_path / "r.png"),
                              "--bundle", str(bundle)])  # fmt: skip
    _one_line_error(res, str(short), minimum)
    assert not (tmp_path / "v.wav").exists() and not (tmp_path / "r.png").exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["distill", "--audio-dir", "{clips}", "-o", "{tmp}/d.parquet", "--batch-size", "0"],
         "--batch-size"),
        (["distill", "--audio-dir", "{clips}", "-o", "{tmp}/d.parquet", "--top-k", "-1"],
         "--top-k"),
        (["reprogram", "--manifest", "{m}", "--events", "{m}", "-o", "{tmp}/r.parquet",
          "--audio-out", "{tmp}/r", "--n", "0"], "--n"),
        (["evaluate", "-g", "{clips}", "-r", "{clips}", "-o", "{tmp}/e.json", "--batch-size",
          "0"], "--batch-size"),
        (["train-vae", "--manifest", "{m}", "--out", "{tmp}/v", "--val-every", "-2"],
         "--val-every"),
    ],
)  # fmt: skip
def test_every_count_is_checked_the_same_way(args, option, clip_dir, clip_manifest, tmp_path):
    fill = {"clips": str(clip_dir), "m": str(clip_manifest), "tmp": str(tmp_path)}
    res = runner.invoke(app, [a.format(**fill) for a in args])
    _one_line_error(res, f"{option} must be a whole number ≥")


def test_a_huge_prompt_gives_short_notes_only(bundle, tmp_path):
    """As a user sees it (a real process: pytest would swallow the warning otherwise)."""
    prompt = "a dog barking " * 400
    cmd = [sys.executable, "-m", "maa.cli.app", "generate", prompt, "-o", str(tmp_path / "o.wav"),
           "--bundle", str(bundle), *GEN]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Token indices" not in output and "UserWarning" not in output
    assert "note: a text of 1202 tokens is longer than the text encoder's limit" in output
    assert max(len(ln) for ln in output.splitlines()) < 300  # the prompt is never echoed whole
