"""Caption experts, CLAP reranking, resume, shards and the `maa distill` CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from maa.audio import write_audio
from maa.errors import MaaError
from maa.manifest import read_manifest, write_manifest
from maa.stages.distill import distill, merge_shards, parse_shard, split_of
from maa.stages.experts import (
    Candidate,
    CaptionerExpert,
    Clip,
    LabelExpert,
    RetrievalExpert,
    audioset_captions,
    build_experts,
    label_phrases,
    normalize_label,
)
from maa.testing import chirp, noise, tone

SR = 22050
KINDS = {  # caption -> clip i of that kind
    "a steady tone": lambda i: tone(300 + 97 * i, 1.0, SR, harmonics=1 + i % 3),
    "white noise hiss": lambda i: noise(1.0, SR, seed=i),
    "a rising chirp": lambda i: chirp(200 + 50 * i, 3000 + 300 * i, 1.0, SR),
}


# ------------------------------------------------------------------------ label expert
@pytest.mark.parametrize(
    "rel,expected",
    [
        ("footsteps/fs_gravel3.ogg", "footsteps on gravel"),
        ("footsteps/grass/step_03.wav", "footsteps on grass"),
        ("fauna/animal/chicken_1.ogg", "chicken"),
        ("dog/dogBark_02.wav", "dog bark"),
        ("weather/rain/rain_on_roof_loop.wav", "rain on roof"),
        ("sfx/DoorOpen-Creaky_v2.flac", "door open creaky"),
        ("drums/hh_open_01.wav", "hi-hat open"),
        ("stamps/animals/birds/cuckoo.ogg", "cuckoo"),
        ("animals/mammals/bovines/cow_fr.ogg", "cow"),
        ("hobbies/camera_35mm.ogg", "camera"),
        ("doors/door_slam_2.wav", "door slam"),
        ("sounds/freedesktop/stereo/camera-shutter.oga", "camera shutter"),
        ("ambient/amb_forest_birds_01.ogg", "ambience forest birds"),
        ("Engine/HeavyTruck_Idle_LP.wav", "engine heavy truck idle"),
    ],
)
def test_label_phrases_from_real_looking_paths(rel: str, expected: str) -> None:
    root = Path("/data/sounds")
    phrases = label_phrases(root / rel, root)
    assert phrases[0] == expected
    assert len(set(phrases)) == len(phrases) and all(p.strip() == p and p for p in phrases)


def test_normalisation_rejects_empty_and_strips_codes() -> None:
    assert normalize_label("0001.wav") == ""
    assert normalize_label("SFX_loop_v2_final.ogg") == ""
    assert normalize_label("HTTPServerHum__03.flac") == "http server hum"
    assert normalize_label("three_zh_TW.ogg") == normalize_label("three-fr.wav") == "three"
    assert normalize_label("say_hi.wav") == "say hi"
    root = Path("/data")
    assert label_phrases(root / "misc" / "0001.wav", root) == []


def test_sidecars_come_first_and_bad_ones_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "doors").mkdir()
    wav = tmp_path / "doors" / "door_slam_2.wav"
    wav.write_bytes(b"")  # the label expert never opens the audio
    (tmp_path / "doors" / "door_slam_2.txt").write_text("  A heavy door slams shut.\n")
    (tmp_path / "doors" / "door_slam_2.json").write_text(
        json.dumps({"description": "wooden door", "tags": ["slam", 3], "id": "x"})
    )
    texts = [c.text for c in LabelExpert().propose(Clip(wav, tmp_path))]
    assert texts[:3] == ["A heavy door slams shut", "wooden door", "slam"]
    assert "door slam" in texts
    (tmp_path / "doors" / "door_slam_2.json").write_text("{not json")
    assert "wooden door" not in [c.text for c in LabelExpert().propose(Clip(wav, tmp_path))]


def test_audioset_bank_and_unknown_expert() -> None:
    names = audioset_captions()
    assert len(names) == 527 and names[0] == "speech" and "walk, footsteps" in names
    with pytest.raises(MaaError, match="unknown expert 'labels'"):
        build_experts("labels")
    with pytest.raises(MaaError, match="needs a CLAP"):
        build_experts("retrieval", clap=None)


def test_captioner_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(MaaError, match="no such folder"):
        CaptionerExpert(tmp_path / "missing")
    with pytest.raises(MaaError, match=r"no config\.json"):
        CaptionerExpert(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(MaaError, match="'bert' model, not an encoder-decoder"):
        CaptionerExpert(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"is_encoder_decoder": True}))
    with pytest.raises(MaaError, match="not a loadable audio encoder-decoder"):
        CaptionerExpert(tmp_path)


def _tiny_captioner(folder: Path) -> Path:
    """A random tiny speech encoder-decoder (wav2vec2 + BERT decoder) saved like a real one."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        SpeechEncoderDecoderConfig,
        SpeechEncoderDecoderModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Processor,
    )

    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "barks", "bell", "rings",
             "wind", "blows", "loudly"]  # fmt: skip
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizer(str(folder / "vocab.txt"))
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, return_attention_mask=False)
    small = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 32, "vocab_size": len(words)}  # fmt: skip
    conv = {"conv_dim": (16, 16), "conv_stride": (5, 4), "conv_kernel": (10, 8)}
    enc = Wav2Vec2Config(
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **conv, **small
    )
    dec = BertConfig(is_decoder=True, add_cross_attention=True, **small)
    cfg = SpeechEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    torch.manual_seed(0)
    model = SpeechEncoderDecoderModel(config=cfg)
    for c in (model.config, model.generation_config):
        c.decoder_start_token_id, c.pad_token_id = tok.cls_token_id, tok.pad_token_id
        c.eos_token_id = tok.sep_token_id
    model.save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(folder)
    return folder


def test_captioner_expert_runs_a_local_model(tmp_path: Path) -> None:
    folder = _tiny_captioner(tmp_path / "captioner")
    expert = CaptionerExpert(folder, top_k=3, max_tokens=6)
    assert expert.sample_rate == 16000
    cands = expert.propose(Clip(tmp_path / "x.wav", tmp_path, tone(440, 1.0, SR), SR))
    assert cands and [c.rank for c in cands] == list(range(len(cands)))
    vocab = {"a", "dog", "barks", "bell", "rings", "wind", "blows", "loudly"}
    assert all(c.expert == "captioner" and set(c.text.split()) <= vocab for c in cands)
    audio = tmp_path / "audio"
    (audio / "bells").mkdir(parents=True)
    write_audio(audio / "bells" / "0001.wav", tone(880, 0.5, 8000), 8000)  # no usable label
    s = distill(audio, tmp_path / "m.parquet", [LabelExpert(), expert], progress=False)
    row = read_manifest(s.out).iloc[0]
    assert [c["expert"] for c in row["candidates"]][:1] == ["label"]  # "bells" from the folder
    assert {c["expert"] for c in row["candidates"]} == {"label", "captioner"}


# ------------------------------------------------------------------- tiny CLAP + data
@pytest.fixture(scope="module")
def clap_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLAP trained for 80 steps on tones vs noise vs chirps (a few seconds of training)."""
    from maa.stages.clap import train_clap
    from maa.trainer import TrainConfig

    root = tmp_path_factory.mktemp("clap")
    rows = []
    for caption, make in KINDS.items():
        for i in range(8):  # even variants train, odd ones are held out for the tests
            name = f"{caption.replace(' ', '_')}_{i}.wav"
            write_audio(root / name, make(2 * i), SR)
            rows.append({"audio_path": name, "caption": caption, "duration": 1.0,
                         "sample_rate": SR, "source": "synthetic", "split": "train"})  # fmt: skip
    write_manifest(pd.DataFrame(rows), root / "train.parquet")
    cfg = TrainConfig(max_steps=80, batch_size=12, ckpt_every=1000, progress=False, device="cpu")
    train_clap(root / "train.parquet", root / "bundle", preset="tiny", train_cfg=cfg)
    return root / "bundle"


@pytest.fixture(scope="module")
def tiny_clap(clap_bundle: Path):
    from maa.clap import load_clap

    return load_clap(clap_bundle)


def _clip_folder(root: Path, per_kind: int = 4, sidecars: bool = True) -> dict[str, str]:
    """Held-out clips under neutral names; each sidecar lists the 3 captions in a shuffled
    order, so the label expert's first candidate is right only by chance. Returns truth."""
    rng = random.Random(0)
    truth = {}
    for k, (caption, make) in enumerate(KINDS.items()):
        for i in range(per_kind):
            rel = f"take{k}/rec_{k}{i:02d}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            write_audio(root / rel, make(2 * i + 1), SR)
            if sidecars:
                labels = list(KINDS)
                rng.shuffle(labels)
                (root / rel).with_suffix(".json").write_text(json.dumps({"labels": labels}))
            truth[rel] = caption
    return truth


def _by_clip(df: pd.DataFrame, root: Path, out: Path) -> dict[str, str]:
    """Chosen caption per clip, keyed by the path relative to the audio folder."""
    return {
        (out.parent / p).resolve().relative_to(root.resolve()).as_posix(): c
        for p, c in zip(df["audio_path"], df["caption"], strict=True)
    }


def _accuracy(df: pd.DataFrame, truth: dict[str, str], root: Path, out: Path) -> float:
    got = _by_clip(df, root, out)
    return sum(got[rel] == cap for rel, cap in truth.items()) / len(truth)


def test_clap_reranking_beats_first_expert(tiny_clap, tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    truth = _clip_folder(audio)
    plain = distill(audio, tmp_path / "plain.parquet", "label", None, progress=False)
    ranked = distill(audio, tmp_path / "ranked.parquet", "label", tiny_clap, progress=False)
    assert not plain.scored and ranked.scored and ranked.processed == len(truth)
    p, r = read_manifest(plain.out), read_manifest(ranked.out)
    acc_plain = _accuracy(p, truth, audio, plain.out)
    acc_ranked = _accuracy(r, truth, audio, ranked.out)
    print(f"accuracy: first expert {acc_plain:.2f}, CLAP-reranked {acc_ranked:.2f}")
    assert acc_ranked >= 0.75 > 1 / 3  # well above chance (three captions)
    assert acc_ranked > acc_plain
    assert p["clap_score"].isna().all()
    # where the first expert's best candidate was wrong, reranking changed the choice to the truth
    first, best = _by_clip(p, audio, plain.out), _by_clip(r, audio, ranked.out)
    wrong = [rel for rel in truth if first[rel] != truth[rel]]
    assert wrong and sum(best[rel] == truth[rel] for rel in wrong) / len(wrong) >= 0.75
    for _, row in r.iterrows():
        scores = [c["clap_score"] for c in row["candidates"]]
        assert row["clap_score"] == pytest.approx(max(scores))
        assert {c["expert"] for c in row["candidates"]} == {"label"}
        assert row["caption"] in [c["text"] for c in row["candidates"]]
    assert set(r["split"]) <= {"train", "valid", "test"} and (r["duration"] == 1.0).all()


def test_retrieval_expert_finds_matching_caption(tiny_clap, tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    truth = _clip_folder(audio, per_kind=3, sidecars=False)
    bank = [*KINDS, "speech", "a dog barks", "church bell"]
    experts = [LabelExpert(), RetrievalExpert(tiny_clap, bank, top_k=2)]
    s = distill(audio, tmp_path / "m.parquet", experts, tiny_clap, progress=False)
    df = read_manifest(s.out)
    assert _accuracy(df, truth, audio, s.out) > 0.5  # chance over the bank: 1/6
    assert (df["caption_expert"] == "retrieval").mean() > 0.5
    assert df["candidates"].map(lambda c: sum(x["expert"] == "retrieval" for x in c)).eq(2).all()


# ------------------------------------------------------- resume, shards, failures (no CLAP)
class CrashAfter:
    """A label expert that dies (like a killed process) after ``n`` clips."""

    name = "label"

    def __init__(self, n: int) -> None:
        self.n, self.inner = n, LabelExpert()

    def propose(self, clip: Clip) -> list[Candidate]:
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt
        return self.inner.propose(clip)


def _folder(root: Path) -> Path:
    from maa.testing import write_clip_folder

    write_clip_folder(root, sr=8000, seconds=0.3, per_kind=3)
    return root


def test_resume_after_crash_gives_same_output(tmp_path: Path) -> None:
    audio = _folder(tmp_path / "audio")
    clean = distill(audio, tmp_path / "clean.parquet", "label", progress=False)
    out = tmp_path / "resumed.parquet"
    with pytest.raises(KeyboardInterrupt):
        distill(audio, out, [CrashAfter(9)], batch_size=4, save_every=4, progress=False)
    partial = read_manifest(out)
    assert 0 < len(partial) < clean.processed  # saved progress survived the crash
    again = distill(audio, out, "label", batch_size=4, progress=False)
    assert again.resumed == len(partial) and again.processed == clean.processed - len(partial)
    pd.testing.assert_frame_equal(read_manifest(out), read_manifest(clean.out))


def test_shards_and_merge_equal_single_run(tmp_path: Path) -> None:
    audio = _folder(tmp_path / "audio")
    single = distill(audio, tmp_path / "single.parquet", "label", progress=False)
    shards = [
        distill(audio, tmp_path / "shards" / f"s{i}.parquet", "label", shard=f"{i}/3",
                progress=False).out
        for i in range(3)
    ]  # fmt: skip
    sizes = [len(read_manifest(s)) for s in shards]
    assert sum(sizes) == single.processed and min(sizes) > 0
    rows, dup, errs = merge_shards(shards, tmp_path / "merged.parquet")
    assert (rows, dup, errs) == (single.processed, 0, 0)
    pd.testing.assert_frame_equal(
        read_manifest(tmp_path / "merged.parquet"), read_manifest(single.out)
    )
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(MaaError, match="0 <= i < n"):
        parse_shard("3/3")
    with pytest.raises(MaaError, match="expected i/n"):
        parse_shard("half")
    assert split_of("a/b.wav") == split_of("a/b.wav")
    splits = pd.Series([split_of(f"clip_{i}.wav") for i in range(2000)]).value_counts(normalize=1)
    assert 0.87 < splits["train"] < 0.93 and 0.03 < splits["test"] < 0.07


def test_unreadable_files_are_recorded_and_rest_processed(tmp_path: Path) -> None:
    audio = _folder(tmp_path / "audio")
    (audio / "broken").mkdir()
    (audio / "broken" / "door_slam.wav").write_bytes(b"RIFF not really audio")
    (audio / "broken" / "empty_rain.ogg").write_bytes(b"")
    write_audio(audio / "0042.wav", torch.zeros(800) + 0.1, 8000)  # readable, no label words
    s = distill(audio, tmp_path / "m.parquet", "label", progress=False)
    assert s.processed == 15 and s.failed == 3
    assert s.errors_path == tmp_path / "m.errors.parquet"
    errors = pd.read_parquet(s.errors_path).set_index("audio_path")["error"]
    assert "not a readable audio file" in errors["audio/broken/door_slam.wav"]
    assert "empty" in errors["audio/broken/empty_rain.ogg"]
    assert "empty after normalisation" in errors["audio/0042.wav"]
    (tmp_path / "silent_folder").mkdir()
    with pytest.raises(MaaError, match="no audio files found"):
        distill(tmp_path / "silent_folder", tmp_path / "x.parquet", "label", progress=False)


# ------------------------------------------------------------------------------------ CLI
def test_cli_distill_merge_and_errors(clap_bundle: Path, tmp_path: Path) -> None:
    from maa.cli.app import app

    audio = _folder(tmp_path / "audio")
    runner = CliRunner()
    res = runner.invoke(app, ["distill", "--audio-dir", str(audio), "-o",
                              str(tmp_path / "a.parquet"), "--no-clap"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "no CLAP" in res.output and "captioned 15 clip(s)" in res.output
    for i in range(2):
        res = runner.invoke(app, ["distill", "--audio-dir", str(audio), "-o",
                                  str(tmp_path / f"s{i}.parquet"), "--no-clap", "--shard",
                                  f"{i}/2"])  # fmt: skip
        assert res.exit_code == 0, res.output
    shards = [str(tmp_path / f"s{i}.parquet") for i in range(2)]
    res = runner.invoke(app, ["distill-merge", *shards, "-o", str(tmp_path / "m.parquet")])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(
        read_manifest(tmp_path / "m.parquet"), read_manifest(tmp_path / "a.parquet")
    )
    res = runner.invoke(app, ["distill", "--audio-dir", str(audio), "-o",
                              str(tmp_path / "c.parquet"), "--clap", str(clap_bundle),
                              "--experts", "label"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert read_manifest(tmp_path / "c.parquet")["clap_score"].notna().all()
    bad = runner.invoke(app, ["distill", "--audio-dir", str(tmp_path / "nope"), "-o",
                              str(tmp_path / "b.parquet"), "--no-clap"])  # fmt: skip
    assert bad.exit_code == 2 and "not a folder" in bad.output
    args = ["distill", "--audio-dir", str(audio), "-o", str(tmp_path / "b.parquet")]
    bad = runner.invoke(app, [*args, "--clap", str(tmp_path / "none")])
    assert bad.exit_code == 2 and "no such file or folder" in bad.output
