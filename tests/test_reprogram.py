"""Composition by templates, the dynamic Reprogrammer and the static `maa reprogram`."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from maa.audio import write_audio
from maa.errors import MaaError
from maa.manifest import read_manifest, write_manifest
from maa.stages.reprogram import (
    CONCAT_TEMPLATES,
    MIX_TEMPLATES,
    Reprogrammer,
    ShortClipError,
    compose,
    render_caption,
    reprogram,
)
from maa.testing import bursts, chirp, noise, tone
from maa.trainer import item_generator

SR = 16000


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _band_centroid(wave: torch.Tensor, lo: float, hi: float) -> float:
    """Time centroid (s) of the energy between ``lo`` and ``hi`` Hz (a band energy envelope)."""
    spec = torch.stft(wave, 512, 128, window=torch.hann_window(512), return_complex=True).abs()
    freqs = torch.linspace(0, SR / 2, spec.shape[0])
    env = spec[(freqs >= lo) & (freqs < hi)].pow(2).sum(0)
    t = torch.arange(env.numel()) * 128 / SR
    return float((env * t).sum() / env.sum())


def _power(track: torch.Tensor) -> float:
    support = track[track != 0]
    return float(support.pow(2).mean())


@pytest.mark.parametrize("template", CONCAT_TEMPLATES)
def test_concat_order_and_duration(template: str) -> None:
    a, b = tone(220, 1.0, SR), tone(3000, 0.6, SR)
    out = compose(a, b, template, _gen(0), SR, max_seconds=5.0, crossfade_ms=20)
    xf = int(0.02 * SR)
    assert out.wave.numel() == a.numel() + b.numel() - xf
    # a (low tone) plays first whatever the wording: "{b} after {a}" also means a, then b
    assert _band_centroid(out.wave, 100, 400) < 0.9 < _band_centroid(out.wave, 2500, 3500)
    assert torch.allclose(out.wave, out.tracks.sum(0), atol=1e-6)
    assert out.wave.abs().max() <= 1.0


def test_concat_respects_max_seconds_and_loudness() -> None:
    a, b = tone(220, 3.0, SR, amp=0.9), tone(3000, 3.0, SR, amp=0.05)
    out = compose(a, b, "{a} before {b}", _gen(1), SR, max_seconds=2.0, crossfade_ms=10)
    assert out.wave.numel() == 2 * SR
    # RMS-matched although the inputs differ by 25 dB
    ratio_db = 10 * math.log10(_power(out.tracks[0]) / _power(out.tracks[1]))
    assert abs(ratio_db) < 0.5


@pytest.mark.parametrize("template,snr", [(MIX_TEMPLATES[0], (2.0, 6.0)),
                                          (MIX_TEMPLATES[1], (10.0, 12.0))])  # fmt: skip
def test_mix_snr_within_range(template: str, snr: tuple[float, float]) -> None:
    a, b = tone(440, 1.5, SR), noise(0.7, SR, seed=3)
    seen = []
    for seed in range(6):
        out = compose(a, b, template, _gen(seed), SR, 10.0, snr, crossfade_ms=20)
        measured = 10 * math.log10(_power(out.tracks[0]) / _power(out.tracks[1]))
        assert snr[0] - 1e-3 <= measured <= snr[1] + 1e-3
        assert measured == pytest.approx(out.snr_db, abs=1e-3)
        assert torch.allclose(out.wave, out.tracks.sum(0), atol=1e-6)
        seen.append(round(measured, 3))
        expected = a.numel()  # both mixing templates keep the longer/foreground length here
        assert out.wave.numel() == expected
    assert len(set(seen)) > 1  # the SNR is drawn, not fixed


def test_background_loops_short_event_under_foreground() -> None:
    a, b = tone(440, 2.0, SR), noise(0.5, SR, seed=1)
    out = compose(a, b, "{a} with {b} in the background", _gen(0), SR, 10.0, (5.0, 5.0))
    assert out.wave.numel() == a.numel()
    assert (out.tracks[1] != 0).float().mean() > 0.99  # looped under the whole foreground


def test_captions_follow_templates() -> None:
    assert render_caption("{a} before {b}", "A dog barks.", "A car passes") == (
        "A dog barks before a car passes"
    )
    assert render_caption("{b} after {a}", "Rain falls", "TV plays") == "TV plays after rain falls"
    assert render_caption("{a} with {b} in the background", "birds", "wind") == (
        "birds with wind in the background"
    )


def test_short_clip_and_unknown_template() -> None:
    with pytest.raises(ShortClipError, match="needs at least"):
        compose(tone(440, 0.1, SR), tone(220, 1.0, SR), "{a} and {b}", _gen(0), SR)
    with pytest.raises(MaaError, match="unknown template"):
        compose(tone(440, 1.0, SR), tone(220, 1.0, SR), "{a} then {b}", _gen(0), SR)


# ----------------------------------------------------------------------------- manifests
def _manifest(root: Path, name: str, clips: dict[str, torch.Tensor], **extra) -> Path:
    rows = []
    (root / name).mkdir(parents=True, exist_ok=True)
    for i, (caption, wave) in enumerate(clips.items()):
        path = write_audio(root / name / f"{i}.wav", wave, SR)
        rows.append({"audio_path": f"{name}/{i}.wav", "caption": caption,
                     "duration": wave.numel() / SR, "sample_rate": SR, "source": "test",
                     "split": "train", **{k: v[i] for k, v in extra.items()}})  # fmt: skip
        assert path.is_file()
    out = root / f"{name}.parquet"
    write_manifest(pd.DataFrame(rows), out)
    return out


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, Path]:
    pairs = _manifest(tmp_path, "pairs", {
        "A low hum": tone(110, 1.2, SR, harmonics=3), "Rain on a roof": noise(1.0, SR, seed=2),
        "A siren sweeps": chirp(500, 1500, 1.5, SR), "A short click": tone(2000, 0.1, SR),
    })  # fmt: skip
    events = _manifest(tmp_path, "events", {
        "a dog barks": bursts(0.8, SR, seed=1), "a bell rings": tone(880, 0.6, SR),
        "wind blows": noise(1.0, SR, seed=5, lowpass=True)})  # fmt: skip
    return pairs, events


def _rp(pairs: Path, events: Path, **kw) -> Reprogrammer:
    return Reprogrammer.from_manifests(
        read_manifest(pairs), read_manifest(events), SR, max_seconds=4.0, max_extra=2, **kw
    )


def test_reprogrammer_epochs_differ_and_repeat(data: tuple[Path, Path]) -> None:
    rp = _rp(*data)
    wave = tone(330, 1.0, SR)

    def epoch(e: int) -> list[tuple[str, int]]:
        out = []
        for i in range(8):
            c = rp.sample(wave, "A tone", item_generator(7, e, i), index_path="orig.wav")
            assert c.wave.numel() <= 4 * SR and c.components[0] == "orig.wav"
            assert c.n_extra == len(c.snr_db) == len(c.template.split(" | ")) * (c.n_extra > 0)
            out.append((c.caption, c.wave.numel(), round(float(c.wave.abs().sum()), 3)))
        return out

    first = epoch(0)
    assert epoch(0) == first  # same epoch seed: identical compositions
    assert epoch(1) != first  # next epoch: fresh compositions


def test_reprogrammer_extra_counts_and_captions(data: tuple[Path, Path]) -> None:
    rp = _rp(*data)
    wave = tone(330, 1.0, SR)
    counts = set()
    for i in range(30):
        c = rp.sample(wave, "A tone.", _gen(i))
        counts.add(c.n_extra)
        if c.n_extra == 0:
            assert c.caption == "A tone" and c.template == "" and torch.equal(c.wave, wave)
        else:
            assert "tone" in c.caption.lower()
            assert any(w in c.caption for w in (" before ", " followed by ", " after ", " and ",
                                                " in the background"))  # fmt: skip
    assert counts == {0, 1, 2}


def test_events_without_usable_clips_is_clear_error(tmp_path: Path) -> None:
    events = _manifest(tmp_path, "ev", {"": tone(440, 1.0, SR), "a blip": tone(880, 0.05, SR)})
    msg = r"no usable single-event clips \(2 rows: 1 with an empty caption, 1 shorter"
    with pytest.raises(MaaError, match=msg):
        Reprogrammer.from_manifests(None, read_manifest(events), SR)


def test_short_original_is_skipped_or_raises(data: tuple[Path, Path]) -> None:
    rp = _rp(*data, min_extra=1)
    c = rp.sample(tone(440, 0.05, SR), "blip", _gen(0))
    assert c.skipped and "needs at least" in c.skipped and c.n_extra == 0
    with pytest.raises(ShortClipError):
        rp.sample(tone(440, 0.05, SR), "blip", _gen(0), strict=True)


def test_static_reprogram_resumes_identically(data: tuple[Path, Path], tmp_path: Path) -> None:
    pairs, events = data
    full = reprogram(pairs, events, tmp_path / "a" / "out.parquet", tmp_path / "a" / "wav", n=8,
                     seed=3, progress=False)  # fmt: skip
    # "crash" after 3 items, then resume to 8
    reprogram(pairs, events, tmp_path / "b" / "out.parquet", tmp_path / "b" / "wav", n=3, seed=3,
              progress=False)  # fmt: skip
    part = reprogram(pairs, events, tmp_path / "b" / "out.parquet", tmp_path / "b" / "wav", n=8,
                     seed=3, progress=False)  # fmt: skip
    a, b = read_manifest(full.out), read_manifest(part.out)
    assert part.resumed > 0 and full.written + full.skipped == 8
    cols = ["audio_path", "caption", "duration", "template", "index"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    for p in a["audio_path"]:
        wa, _ = sf.read(tmp_path / "a" / p)
        wb, _ = sf.read(tmp_path / "b" / p)
        assert (wa == wb).all()
    # the short pair ("A short click", 0.1 s) can only be recorded as a skip, never written
    assert not a["caption"].str.contains("click").any()
    if full.skipped:
        assert full.skipped_path == full.out.with_name("out.skipped.parquet")
        skips = pd.read_parquet(full.skipped_path)
        assert skips["reason"].str.contains("needs at least").all()
    row = a.iloc[0]
    assert row["template"] and 2 <= len(row["components"]) <= 3
    assert all((tmp_path / "a" / c).is_file() for c in row["components"])
    info = sf.info(tmp_path / "a" / row["audio_path"])
    assert info.samplerate == SR and info.duration == pytest.approx(row["duration"], abs=1e-3)


def test_cli_reprogram(data: tuple[Path, Path], tmp_path: Path) -> None:
    from maa.cli.app import app

    pairs, events = data
    out = tmp_path / "cli" / "r.parquet"
    res = CliRunner().invoke(app, ["reprogram", "--manifest", str(pairs), "--events", str(events),
                                   "-o", str(out), "--audio-out", str(tmp_path / "cli" / "wav"),
                                   "--n", "4", "--seed", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    df = read_manifest(out)
    assert 0 < len(df) <= 4 and set(df["source"]) == {"reprogram"}
    bad = CliRunner().invoke(app, ["reprogram", "--manifest", str(tmp_path / "nope.parquet"),
                                   "--events", str(events), "-o", str(out), "--audio-out",
                                   str(tmp_path)])  # fmt: skip
    assert bad.exit_code == 2 and "no such manifest" in bad.output
