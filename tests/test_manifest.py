"""Manifests: schema, validation messages, atomic round trip, scan/import/info."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from maa.cli.app import app
from maa.errors import ManifestError
from maa.manifest import audio_paths, read_manifest, validate, write_manifest
from maa.stages.manifest_ops import import_file, scan, summarize

runner = CliRunner()


def _df(**over):
    data = {
        "audio_path": ["a.wav", "b.wav"],
        "caption": ["a dog", "rain"],
        "duration": [1.0, 2.5],
        "sample_rate": [22050, 16000],
        "source": ["x", "x"],
        "split": ["train", "valid"],
    }
    data.update(over)
    return pd.DataFrame(data)


def test_round_trip_keeps_values_and_extra_columns(tmp_path):
    df = _df()
    df["candidates"] = [[{"text": "a dog", "expert": "label", "clap_score": 0.3}], []]
    path = write_manifest(df, tmp_path / "sub" / "m.parquet")
    back = read_manifest(path)
    pd.testing.assert_frame_equal(back[list(_df().columns)], _df(), check_dtype=False)
    assert back["candidates"][0][0]["expert"] == "label"
    assert audio_paths(back)[0] == tmp_path / "sub" / "a.wav"
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_validation_names_column_and_row(tmp_path):
    with pytest.raises(ManifestError, match=r"missing column.*caption"):
        validate(_df().drop(columns=["caption"]))
    with pytest.raises(ManifestError, match=r"'duration' row 1 holds 'long'"):
        validate(_df(duration=[1.0, "long"]))
    with pytest.raises(ManifestError, match=r"'sample_rate' row 0 holds 22050.5"):
        validate(_df(sample_rate=[22050.5, 16000]))
    with pytest.raises(ManifestError, match=r"'caption' row 1"):
        validate(_df(caption=["ok", 3]))
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ManifestError, match="missing column"):
        read_manifest(tmp_path / "bad.parquet")
    (tmp_path / "junk.parquet").write_text("junk")
    with pytest.raises(ManifestError, match="not a readable Parquet"):
        read_manifest(tmp_path / "junk.parquet")


def test_scan_records_unreadable_files(clip_dir, tmp_path):
    bad = tmp_path / "audio"
    bad.mkdir()
    (bad / "broken.wav").write_text("nope")
    (bad / "empty.flac").write_bytes(b"")
    df, failures = scan(clip_dir, tmp_path, valid_fraction=0.3)
    assert len(df) == 10 and failures.empty
    assert set(df["split"]) <= {"train", "valid"}
    assert df["duration"].round(3).eq(1.0).all() and df["sample_rate"].eq(22050).all()
    df2, _ = scan(clip_dir, tmp_path, valid_fraction=0.3)
    assert df2["split"].tolist() == df["split"].tolist()  # deterministic
    _, fails = scan(bad, tmp_path)
    assert sorted(Path(p).name for p in fails["audio_path"]) == ["broken.wav", "empty.flac"]


def test_import_official_tsv_audiocaps_and_jsonl(clip_dir, tmp_path):
    wavs = sorted(clip_dir.rglob("*.wav"))[:2]
    tsv = tmp_path / "maa.tsv"
    tsv.write_text(
        "name\tdataset\tcaption\taudio_path\tmel_path\tduration\n"
        f"a\taudiocaps\ta  dog barks\t{wavs[0]}\tx.npy\t1.0\n"
        f"b\taudiocaps\tmissing\t{tmp_path / 'nope.wav'}\tx.npy\t1.0\n"
    )
    df, fails = import_file(tsv, tmp_path)
    assert df["caption"].tolist() == ["a dog barks"] and df["source"].tolist() == ["audiocaps"]
    assert len(fails) == 1 and "no such file" in fails["error"][0]

    csv = tmp_path / "ac.csv"
    csv.write_text(f"audiocap_id,youtube_id,start_time,caption\n1,{wavs[1].stem},0,a chirp\n")
    with pytest.raises(Exception, match="--audio-dir"):
        import_file(csv, tmp_path)
    df, _ = import_file(csv, tmp_path, audio_dir=clip_dir)
    assert df["caption"].tolist() == ["a chirp"]

    (wavs[0].with_suffix(".json")).write_text(json.dumps({"description": "low hum"}))
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(
        json.dumps({"path": str(wavs[0]), "duration": 1.0, "sample_rate": 22050}) + "\n"
    )
    df, _ = import_file(jsonl, tmp_path)
    assert df["caption"].tolist() == ["low hum"]
    wavs[0].with_suffix(".json").unlink()

    odd = tmp_path / "odd.csv"
    odd.write_text("foo,bar\n1,2\n")
    with pytest.raises(ManifestError, match="unrecognised columns"):
        import_file(odd, tmp_path)


def test_cli_scan_and_info(clip_dir, tmp_path):
    out = tmp_path / "m.parquet"
    res = runner.invoke(app, ["manifest", "scan", str(clip_dir), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert summarize(read_manifest(out))["clips"] == 10
    res = runner.invoke(app, ["manifest", "info", str(out)])
    assert res.exit_code == 0 and "clips" in res.output and "10" in res.output
    res = runner.invoke(app, ["manifest", "info", str(tmp_path / "nope.parquet")])
    assert res.exit_code == 2 and "no such manifest" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["manifest", "scan", str(empty), "-o", str(out)])
    assert res.exit_code == 2 and "no audio files found" in res.output
