"""Captions outside manifests: the one sidecar rule (scan, distill) and the caption-list reader."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from maa.audio import write_audio
from maa.captions import MAX_SIDECAR_CHARS, read_captions, sidecar_texts
from maa.cli.app import app
from maa.errors import MaaError
from maa.manifest import read_manifest, write_manifest


def _sidecar_folder(root: Path) -> dict[str, str]:
    """Clips with every sidecar style; returns the caption each one should get."""
    root.mkdir(parents=True)
    sides = {
        "a.wav": ({"a.txt": "  A dog   barks.\n"}, "A dog barks"),
        "b.wav": ({"b.wav.txt": "rain on a tin roof"}, "rain on a tin roof"),
        "c.wav": ({"c.json": {"captions": ["a bell rings", "bell"], "id": 3}}, "a bell rings"),
        "d.wav": (
            {"d.txt": "x" * (MAX_SIDECAR_CHARS + 1), "d.wav.json": {"title": "engine idling"}},
            "engine idling",
        ),
        "e.wav": ({"e.json": "{not json"}, ""),
    }
    expected = {}
    for i, (name, (files, caption)) in enumerate(sides.items()):
        write_audio(root / name, 0.1 * torch.sin(torch.arange(4000) * (0.05 + 0.01 * i)), 8000)
        for side, content in files.items():
            text = content if isinstance(content, str) else json.dumps(content)
            (root / side).write_text(text, encoding="utf-8")
        expected[name] = caption
    return expected


def test_sidecar_rule(tmp_path: Path) -> None:
    clip = tmp_path / "door.wav"
    (tmp_path / "door.txt").write_text(" A heavy door slams shut. \n")
    (tmp_path / "door.wav.txt").write_text("a heavy DOOR slams shut")  # a repeat: dropped
    (tmp_path / "door.json").write_text(
        json.dumps({"tags": ["slam", 3], "description": "wooden door", "id": "x"})
    )
    assert sidecar_texts(clip) == ["A heavy door slams shut", "wooden door", "slam"]
    assert sidecar_texts(tmp_path / "nothing.wav") == []


def test_scan_and_distill_read_sidecars_the_same_way(tmp_path: Path) -> None:
    expected = _sidecar_folder(tmp_path / "audio")
    runner = CliRunner()
    scanned, distilled = tmp_path / "scan.parquet", tmp_path / "distill.parquet"
    res = runner.invoke(app, ["manifest", "scan", str(tmp_path / "audio"), "-o", str(scanned)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["distill", "--audio-dir", str(tmp_path / "audio"), "-o",
                              str(distilled), "--experts", "label", "--no-clap"])  # fmt: skip
    assert res.exit_code == 0, res.output
    scan_df = read_manifest(scanned).set_index("audio_path")["caption"]
    dist_df = read_manifest(distilled).set_index("audio_path")
    for name, caption in expected.items():
        texts = sidecar_texts(tmp_path / "audio" / name)
        assert scan_df[f"audio/{name}"] == caption == (texts[0] if texts else "")
        if caption:  # without a CLAP, distill keeps the label expert's first (sidecar) text
            row = dist_df.loc[f"audio/{name}"]
            assert row["caption"] == caption
            assert [c["text"] for c in row["candidates"]][: len(texts)] == texts
    assert "audio/e.wav" not in dist_df.index  # bad sidecar, no label words: recorded as error


def test_read_captions_from_text_and_manifest(tmp_path: Path) -> None:
    txt = tmp_path / "prompts.txt"
    txt.write_text("a dog  barks\n\n# a comment\n  rain \na dog barks\n", encoding="utf-8")
    assert read_captions(txt) == ["a dog barks", "rain", "a dog barks"]  # order and repeats kept
    df = pd.DataFrame({
        "audio_path": ["a.wav", "b.wav", "c.wav"], "caption": ["a bell", "", " wind  howls "],
        "duration": [1.0] * 3, "sample_rate": [16000] * 3, "source": ["x"] * 3,
        "split": ["train"] * 3,
    })  # fmt: skip
    assert read_captions(write_manifest(df, tmp_path / "m.parquet")) == ["a bell", "wind howls"]
    with pytest.raises(MaaError, match=r"--prompts .*missing\.txt: no such file"):
        read_captions(tmp_path / "missing.txt", "--prompts")
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(MaaError, match="holds no captions"):
        read_captions(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 noise\n".encode("latin-1"))
    with pytest.raises(MaaError, match="not a UTF-8 text file"):
        read_captions(tmp_path / "latin1.txt", "--caption-bank")
    no_col = tmp_path / "no_col.parquet"
    df.drop(columns=["caption"]).to_parquet(no_col)
    with pytest.raises(MaaError, match="no 'caption' column"):
        read_captions(no_col)
