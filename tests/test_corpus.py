"""`maa corpus`: rules parsing/matching, the build on fake package trees and fake .deb files."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from maa.audio import audio_info, write_audio
from maa.errors import MaaError
from maa.manifest import read_manifest
from maa.stages.corpus import sources as corpus_sources
from maa.stages.corpus.build import assign_splits, build_corpus
from maa.stages.corpus.rules import RuleSet, choose_caption, glob_regex, parse_rules
from maa.testing import bursts, noise, tone

SR = 22050
HEADER = "package\tpattern\tcategory\tcaptions\tlicense\toptions\n"
RULES = HEADER + (
    "fake-a\t**/sounds/rain_*.wav\train\train falling|steady rain\tCC0-1.0\tmax_windows=3\n"
    "fake-a\t**/sounds/dog_*.wav\tdog\ta dog barking|a dog barks\tGPL-2+\t\n"
    "fake-a\t**/sounds/skip_*.wav\tskip\t\t\t\n"
    "fake-a\t**/data.zip!sfx/{bell,chime}_*.ogg\tbell\ta bell ringing\tCC-BY-SA-3.0\t\n"
    "fake-b\t**/*.wav\tother\tsomething\tMIT\t\n"
)


@pytest.fixture(autouse=True)
def no_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a package mirror: apt-get is reported absent."""
    real = shutil.which
    monkeypatch.setattr(
        corpus_sources.shutil, "which", lambda n: None if n == "apt-get" else real(n)
    )


def _fake_tree(root: Path) -> Path:
    """An unpacked package: a 12 s loop, three dog barks, a skipped file and a zip archive."""
    snd = root / "usr/share/fake/sounds"
    snd.mkdir(parents=True)
    write_audio(snd / "rain_loop.wav", noise(12.0, 44100, seed=1), 44100)
    for i in range(3):
        write_audio(snd / f"dog_{i}.wav", bursts(1.0, 16000, seed=i), 16000)
    write_audio(snd / "skip_me.wav", tone(440, 1.0, SR), SR)
    with zipfile.ZipFile(root / "usr/share/fake/data.zip", "w") as z:
        for name, freq in (("sfx/bell_1.ogg", 880), ("sfx/chime_2.ogg", 1320), ("gfx/x.ogg", 99)):
            buf = io.BytesIO()
            sf.write(buf, tone(freq, 0.5, SR).numpy(), SR, format="OGG", subtype="VORBIS")
            z.writestr(name, buf.getvalue())
    return root


def _rules(tmp_path: Path, text: str = RULES) -> Path:
    path = tmp_path / "rules.tsv"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_rules_parse_and_cover_twenty_categories() -> None:
    rules = parse_rules()
    cats = {r.category for r in rules if r.category != "skip"}
    assert len(cats) >= 20
    assert {"speech", "rain", "dog", "footsteps", "piano"} <= cats
    assert all(r.license for r in rules if r.category != "skip")
    assert {"0ad-data", "tuxpaint-stamps-default", "fluid-soundfont-gm"} <= set(
        RuleSet(rules).packages
    )


def test_shipped_rules_match_real_paths() -> None:
    rs = RuleSet(parse_rules())
    zip_path = "./usr/share/games/0ad/mods/public/public.zip"
    rain = rs.match("0ad-data", zip_path, "audio/ambient/weather/rain_11.ogg")
    assert rain is not None and rain.category == "rain" and rain.license == "CC-BY-SA-3.0"
    gravel = rs.match(
        "0ad-data", zip_path, "audio/actor/human/movement/Footsteps/Footstep_Gravel_Walking.ogg"
    )
    assert gravel is not None and "gravel" in gravel.captions[0]
    assert rs.match("0ad-data", zip_path, "audio/music/menu_track.ogg").category == "music"
    assert rs.match("0ad-data", zip_path, "audio/interface/alarm/alarmvictory.ogg") is None
    stamps = "usr/share/tuxpaint/stamps/animals/mammals/dogs/"
    assert rs.match("tuxpaint-stamps-default", stamps + "dog.ogg").category == "dog"
    assert rs.match("tuxpaint-stamps-default", stamps + "dog_desc_fr.ogg").category == "speech"
    assert rs.match("tuxpaint-stamps-default", stamps + "dog_desc_bg.ogg").category == "skip"
    assert rs.wants_file("0ad-data", zip_path) and not rs.wants_file("0ad-data", "usr/x.png")


def test_glob_semantics() -> None:
    assert glob_regex("**/a/*.wav").match("a/x.wav")
    assert glob_regex("**/a/*.wav").match("usr/share/a/x.wav")
    assert not glob_regex("**/a/*.wav").match("usr/a/b/x.wav")
    assert glob_regex("x/{rain,wind}_?.ogg").match("x/WIND_1.ogg")
    assert not glob_regex("x/{rain,wind}_?.ogg").match("x/snow_1.ogg")
    assert glob_regex("**/[0-9]_en.ogg").match("m/7_en.ogg")


def test_rules_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(MaaError, match=r"rules.tsv:3: column 'captions' is empty"):
        parse_rules(_rules(tmp_path, HEADER + "p\t*.wav\tc\tok\tMIT\t\np\t*.ogg\tc\t\tMIT\t\n"))
    with pytest.raises(MaaError, match="unknown option 'loop=2'"):
        parse_rules(_rules(tmp_path, HEADER + "p\t*.wav\tc\tok\tMIT\tloop=2\n"))
    with pytest.raises(MaaError, match="needs program=N"):
        parse_rules(_rules(tmp_path, HEADER + "p\t**/x.sf2\tpiano\tpiano\tMIT\t\n"))


def test_caption_choice_is_seeded() -> None:
    rule = parse_rules()[0]
    picks = {choose_caption(rule, f"clip{i}", seed=0) for i in range(40)}
    assert picks == set(rule.captions)
    assert choose_caption(rule, "clip3", 0) == choose_caption(rule, "clip3", 0)


def test_build_from_unpacked_trees(tmp_path: Path) -> None:
    debs = tmp_path / "debs"
    _fake_tree(debs / "fake-a")
    logs: list[str] = []
    report = build_corpus(tmp_path / "out", rules=_rules(tmp_path), deb_dir=debs,
                          clip_seconds=4.0, log=logs.append)  # fmt: skip
    # fake-b: not in --deb-dir, no apt-get → reported with what to do, the rest continues
    assert report.missing == ["fake-b"] and "--deb-dir" in report.packages["fake-b"]
    df = read_manifest(report.manifest)
    assert report.categories == {"dog": 3, "rain": 3, "bell": 2}
    assert set(df["license"]) == {"CC0-1.0", "GPL-2+", "CC-BY-SA-3.0"}
    assert (df["sample_rate"] == SR).all() and (df["source"] == "fake-a").all()
    rain = df[df["category"] == "rain"]
    assert rain["duration"].round(3).tolist() == [4.0, 4.0, 4.0]
    assert rain["offset"].tolist() == sorted(rain["offset"]) and rain["offset"].iloc[0] == 0.0
    assert rain["recording"].nunique() == 1 and rain["split"].nunique() == 1
    assert set(df["caption"]) <= {"rain falling", "steady rain", "a dog barking", "a dog barks",
                                  "a bell ringing"}  # fmt: skip
    bell = df[df["category"] == "bell"]["original_path"].tolist()
    assert bell == ["usr/share/fake/data.zip!sfx/bell_1.ogg",
                    "usr/share/fake/data.zip!sfx/chime_2.ogg"]  # fmt: skip
    for path in df["audio_path"]:
        info = audio_info(tmp_path / "out" / path)
        assert info.sample_rate == SR and info.channels == 1
    assert not any("skip_me" in p for p in df["original_path"])


def test_split_by_recording() -> None:
    rows = [{"category": f"c{i % 3}", "recording": f"r{i // 4}"} for i in range(240)]
    df = pd.DataFrame(rows)
    df["category"] = df["recording"].map(lambda r: f"c{int(r[1:]) % 3}")
    split = assign_splits(df, seed=0)
    per_rec = split.groupby(df["recording"]).nunique()
    assert (per_rec == 1).all()  # no recording in two splits
    for _, s in split.groupby(df["category"]):
        assert set(s) == {"train", "valid", "test"}
    assert split.tolist() == assign_splits(df, seed=0).tolist()
    assert split.tolist() != assign_splits(df, seed=1).tolist()


def test_resume_skips_finished_recordings(tmp_path: Path) -> None:
    debs = tmp_path / "debs"
    _fake_tree(debs / "fake-a")
    kw = dict(rules=_rules(tmp_path), deb_dir=debs, packages=["fake-a"], clip_seconds=4.0)
    first = build_corpus(tmp_path / "out", log=lambda m: None, **kw)
    journal = tmp_path / "out/parts/fake-a.jsonl"
    with journal.open("a") as f:
        f.write('{"key": "torn li')  # killed mid-write (or disk full): the torn line is ignored
    df = read_manifest(first.manifest)
    dog0 = (
        tmp_path / "out" / df[df["original_path"].str.endswith("dog_0.wav")]["audio_path"].iloc[0]
    )
    dog0.unlink()  # a lost clip is redone, nothing else
    logs: list[str] = []
    second = build_corpus(tmp_path / "out", log=logs.append, **kw)
    assert any("1 recordings converted now, 5 reused" in m for m in logs), logs
    assert dog0.is_file()
    a, b = read_manifest(first.manifest), read_manifest(second.manifest)
    pd.testing.assert_frame_equal(a.drop(columns="phrases"), b.drop(columns="phrases"))


def _build_deb(tree: Path, out: Path, use_dpkg: bool) -> Path:
    """A minimal .deb of ``tree``: with dpkg-deb --build, or written as an ar archive here."""
    (tree / "DEBIAN").mkdir(exist_ok=True)
    (tree / "DEBIAN/control").write_text(
        "Package: fake-a\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@e.x>\n"
        "Description: test\n test package\n"
    )
    if use_dpkg:
        subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(tree), str(out)], check=True,
                       capture_output=True)  # fmt: skip
        return out
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for p in sorted(tree.rglob("*")):
            if "DEBIAN" not in p.parts:
                tar.add(p, arcname="./" + p.relative_to(tree).as_posix(), recursive=False)
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.gz", b""),
               (b"data.tar.gz", data.getvalue())]  # fmt: skip
    with out.open("wb") as f:
        f.write(b"!<arch>\n")
        for name, body in members:
            f.write(name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"100644".ljust(8)
                    + str(len(body)).encode().ljust(10) + b"`\n" + body)  # fmt: skip
            if len(body) % 2:
                f.write(b"\n")
    return out


@pytest.mark.parametrize("use_dpkg", [True, False], ids=["dpkg-deb", "python-ar"])
def test_build_from_deb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_dpkg: bool) -> None:
    if use_dpkg and shutil.which("dpkg-deb") is None:
        use_dpkg = False  # no dpkg here: the test still runs, on the pure-Python path
    tree = _fake_tree(tmp_path / "tree")
    debs = tmp_path / "debs"
    debs.mkdir()
    _build_deb(tree, debs / "fake-a_1.0_all.deb", use_dpkg)
    if not use_dpkg:
        monkeypatch.setattr(corpus_sources.shutil, "which", lambda n: None)
    report = build_corpus(tmp_path / "out", packages=["fake-a"], rules=_rules(tmp_path),
                          deb_dir=debs, clip_seconds=4.0, log=lambda m: None)  # fmt: skip
    assert report.categories == {"dog": 3, "rain": 3, "bell": 2}
    unpacked = tmp_path / "out/cache/unpacked/fake-a"
    assert json.loads((unpacked / ".maa-unpacked.json").read_text())["deb"] == "fake-a_1.0_all.deb"
    assert not (unpacked / "usr/share/fake/sounds/skip_me.wav").exists()  # only wanted files


def test_nothing_usable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MaaError, match=r"corpus is empty.*apt-get is not available"):
        build_corpus(tmp_path / "out", rules=_rules(tmp_path), deb_dir=tmp_path, log=print)
    with pytest.raises(MaaError, match="no rules for package"):
        build_corpus(tmp_path / "out", packages=["nope"], rules=_rules(tmp_path), log=print)


def test_cli_build_and_stats(tmp_path: Path) -> None:
    from maa.cli.app import app

    debs = tmp_path / "debs"
    _fake_tree(debs / "fake-a")
    runner = CliRunner()
    args = ["--out", str(tmp_path / "c"), "--deb-dir", str(debs), "--rules", str(_rules(tmp_path))]
    res = runner.invoke(app, ["corpus", "build", *args, "--clip-seconds", "4"])
    assert res.exit_code == 0, res.output
    assert "smaller corpus" in res.output and "fake-b" in res.output
    res = runner.invoke(app, ["corpus", "stats", str(tmp_path / "c/manifest.parquet")])
    assert res.exit_code == 0, res.output
    assert "CC-BY-SA-3.0" in res.output and "8 clips" in res.output


def test_distill_clap_picks_captions_among_rule_phrases(tmp_path: Path) -> None:
    from maa.manifest import write_manifest
    from maa.stages.clap import train_clap
    from maa.trainer import TrainConfig

    rows = []
    for i in range(6):  # a tiny CLAP: enough to score, not to be right
        name = f"c{i}.wav"
        wave = tone(300 + 50 * i, 1.0, SR) if i % 2 else noise(1.0, SR, seed=i)
        write_audio(tmp_path / name, wave, SR)
        rows.append(
            {
                "audio_path": name,
                "caption": "tone" if i % 2 else "noise",
                "duration": 1.0,
                "sample_rate": SR,
                "source": "t",
                "split": "train",
            }
        )
    write_manifest(pd.DataFrame(rows), tmp_path / "clap.parquet")
    cfg = TrainConfig(max_steps=2, batch_size=4, ckpt_every=1000, progress=False, device="cpu")
    train_clap(tmp_path / "clap.parquet", tmp_path / "clap", preset="tiny", train_cfg=cfg)
    debs = tmp_path / "debs"
    _fake_tree(debs / "fake-a")
    report = build_corpus(tmp_path / "out", packages=["fake-a"], rules=_rules(tmp_path),
                          deb_dir=debs, clip_seconds=4.0, distill_clap=tmp_path / "clap",
                          log=lambda m: None)  # fmt: skip
    df = read_manifest(report.manifest)
    assert len(df) == 8 and df["clap_score"].notna().all()
    assert all(c in list(p) for c, p in zip(df["caption"], df["phrases"], strict=True))


def test_slice_lays_out_category_folders_and_a_test_manifest(tmp_path: Path) -> None:
    from maa.cli.app import app
    from maa.manifest import write_manifest
    from maa.stages.corpus.slice import slice_corpus

    corpus = tmp_path / "corpus"
    rows = []
    for cat in ("rain", "big cat"):
        for i, split in enumerate(["train"] * 5 + ["test"] * 2):
            name = f"clips/{cat}_{i}.flac"
            (corpus / "clips").mkdir(parents=True, exist_ok=True)
            write_audio(corpus / name, noise(0.3, 22050, seed=i), 22050)
            rows.append({"audio_path": name, "caption": f"{cat} sound", "duration": 0.3,
                         "sample_rate": 22050, "source": "pkg", "split": split, "category": cat,
                         "license": "CC0-1.0", "original_path": f"usr/{i}"})  # fmt: skip
    write_manifest(pd.DataFrame(rows), corpus / "manifest.parquet")
    res = CliRunner().invoke(app, ["corpus", "slice", str(corpus / "manifest.parquet"), "-o",
                                   str(tmp_path / "s"), "--categories", "rain,big cat",
                                   "--per-category", "3"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "s/audio/rain").iterdir())) == 3
    assert len(list((tmp_path / "s/audio/big_cat").iterdir())) == 3
    test = read_manifest(tmp_path / "s/test.parquet")
    assert len(test) == 4 and set(test["split"]) == {"test"}
    assert all((tmp_path / "s" / p).is_file() for p in test["audio_path"])
    sources = read_manifest(tmp_path / "s/sources.parquet")
    assert len(sources) == 10 and set(sources["license"]) == {"CC0-1.0"}
    with pytest.raises(MaaError, match="no clips of category dog"):
        slice_corpus(corpus / "manifest.parquet", tmp_path / "t", ["dog"], 3)
    with pytest.raises(MaaError, match="not empty"):
        slice_corpus(corpus / "manifest.parquet", tmp_path / "s", ["rain"], 3)
