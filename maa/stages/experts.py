"""Caption experts for expert distillation (the paper's pseudo prompt enhancement, part 1).

Every expert proposes caption candidates for one clip behind one interface::

    expert.propose(clip) -> list[Candidate(text, expert, rank)]   # rank 0 = the expert's best

* ``label`` — phrases from the folder names, the file name and sidecar ``.txt``/``.json`` files,
  normalised ("footsteps/fs_gravel3.ogg" → "footsteps on gravel").
* ``retrieval`` — CLAP audio→text retrieval over a caption bank (captions of a user manifest and
  the AudioSet class names shipped in ``maa/assets/audioset_labels.txt``).
* ``captioner:PATH`` — a local Hugging Face audio-captioning encoder–decoder.

CLAP then scores every candidate against the audio (see :mod:`maa.stages.distill`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from maa.audio import load_audio, resample
from maa.captions import read_captions, sidecar_texts, unique_texts
from maa.errors import MaaError
from maa.system import ASSETS

LABEL_BANK_NAME = "audioset_labels.txt"

# Abbreviations seen in sound-library file names, expanded word by word. Keep it reviewable:
# only expansions a person would agree with out of context.
ABBREVIATIONS: dict[str, str] = {
    "fs": "footsteps", "ftsp": "footsteps", "footstep": "footsteps", "step": "footsteps",
    "steps": "footsteps", "amb": "ambience",
    "atmo": "atmosphere", "bg": "background", "bgd": "background", "wtr": "water",
    "wnd": "wind", "elec": "electric", "mech": "mechanical", "lg": "large", "sml": "small",
    "sm": "small", "med": "medium", "hvy": "heavy", "lt": "light", "imp": "impact",
    "wpn": "weapon", "veh": "vehicle", "eng": "engine", "expl": "explosion", "ext": "exterior",
    "int": "interior", "dist": "distant", "btn": "button", "vox": "voice", "gtr": "guitar",
    "kbd": "keyboard", "perc": "percussion", "hh": "hi-hat", "snr": "snare", "cym": "cymbal",
    "pno": "piano", "vln": "violin", "dr": "door", "wd": "wood", "mtl": "metal",
    "birdsong": "bird song", "doorbell": "door bell", "thunderclap": "thunder clap",
}  # fmt: skip
# Tokens that describe the file, not the sound ("sfx", "mono", "loop", "final").
NOISE_WORDS = frozenset({
    "sfx", "fx", "snd", "sound", "sounds", "audio", "sample", "samples", "clip", "clips",
    "mono", "stereo", "loop", "loops", "looped", "lp", "var", "variation", "take", "final",
    "edit", "version", "ver", "rev", "wav", "ogg", "mp3", "flac", "copy", "orig", "original",
    "new", "untitled", "track", "data", "file", "files", "mm", "cm", "hz", "khz", "kbps",
})  # fmt: skip
# Folder names that are categories rather than the thing heard ("animal/chicken_1.ogg" is a
# chicken, not an "animal chicken"); they never prefix a file's phrase.
GENERIC_FOLDERS = frozenset({
    "audio", "sounds", "sound", "sfx", "fx", "effects", "effect", "foley", "misc", "general",
    "other", "actor", "actors", "fauna", "flora", "animal", "animals", "nature", "environment",
    "ambient", "ambience", "ambiences", "objects", "object", "items", "item", "ui", "interface",
    "music", "voice", "voices", "data", "share", "usr", "assets", "resources", "res", "media",
    "samples", "sample", "library", "lib", "stamps", "src", "game", "games", "stereo",
    "mono", "icons", "freedesktop", "sound-icons",
})  # fmt: skip
# Subjects that happen *on* (or *in*) a surface, and the surfaces, with their preposition:
# "footsteps" + "gravel" reads "footsteps on gravel".
SURFACE_SUBJECTS = frozenset({
    "footsteps", "steps", "walking", "running", "walk", "run", "jumping", "landing", "rain",
    "raindrops", "drops", "dripping", "impact", "impacts", "hit", "hits", "knock", "knocking",
    "dragging", "drag", "scrape", "scraping", "rolling", "bounce", "bouncing",
})  # fmt: skip
SURFACES: dict[str, str] = {
    "gravel": "on", "grass": "on", "wood": "on", "wooden": "on", "stone": "on", "stones": "on",
    "metal": "on", "concrete": "on", "dirt": "on", "carpet": "on", "tile": "on", "tiles": "on",
    "ice": "on", "leaves": "on", "floor": "on", "road": "on", "asphalt": "on", "rock": "on",
    "marble": "on", "roof": "on", "glass": "on", "sand": "in", "snow": "in", "mud": "in",
    "water": "in", "puddle": "in", "puddles": "in",
}  # fmt: skip
# Locale suffixes of localised files ("cow_fr.ogg", "one_zh_TW.ogg"), only stripped from the end
# of a file name. Codes that are common English words ("hi", "is", "no", "id") are left out.
LANGUAGE_CODES = frozenset({
    "en", "fr", "de", "es", "it", "pt", "nl", "el", "ja", "ko", "zh", "ru", "uk", "be", "bg",
    "ca", "cs", "da", "fi", "sv", "nb", "nn", "pl", "ro", "sl", "sk", "hu", "tr", "he", "ar",
    "eu", "gl", "gd", "cy", "hr", "sr", "sq", "et", "lv", "lt", "fa", "vi", "zu", "ast", "oc",
    "eo",
})  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """One proposed caption: its text, the expert that proposed it and the expert's rank."""

    text: str
    expert: str
    rank: int


@dataclass
class Clip:
    """What experts see of one clip.

    ``wave`` is ``(T,)`` mono at ``sample_rate`` Hz (the CLAP's rate when one is used);
    ``audio_embedding`` is the clip's ``(D,)`` L2-normalised CLAP embedding when distill has
    computed it (the retrieval expert reuses it instead of embedding the audio again).
    """

    path: Path
    root: Path
    wave: torch.Tensor | None = None
    sample_rate: int = 0
    audio_embedding: torch.Tensor | None = field(default=None, repr=False)


class Expert(Protocol):
    name: str

    def propose(self, clip: Clip) -> list[Candidate]: ...


# ----------------------------------------------------------------------------- label expert
def normalize_label(text: str, file_name: bool = True) -> str:
    """A file (or, with ``file_name=False``, folder) name as plain lower-case words.

    Strips an audio extension, splits camelCase / snake_case / kebab-case and digits off
    letters, drops numbers, single letters, file-ish words ("sfx", "loop") and a file name's
    trailing locale code ("_fr"), expands the :data:`ABBREVIATIONS` and collapses repeated
    words. May return "" (callers reject it).
    """
    return " ".join(_words(text, file_name))


def _words(text: str, file_name: bool = False) -> list[str]:
    text = re.sub(r"\.(wav|flac|ogg|oga|mp3|aiff?|au|opus)$", "", text.strip(), flags=re.I)
    if file_name:  # "cow_fr.ogg", "three_zh_TW.ogg": localised variants, not caption words
        loc = re.search(r"[_.-]([a-z]{2,3})(?:[_-][A-Za-z]{2})?$", text)
        if loc and loc.start() > 0 and loc.group(1) in LANGUAGE_CODES:
            text = text[: loc.start()]
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # camelCase
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)  # HTTPServer -> HTTP Server
    text = re.sub(r"(\d)([A-Za-z])|([A-Za-z])(\d)", r"\1\3 \2\4", text)
    words: list[str] = []
    for word in (w.strip("'") for w in re.split(r"[^A-Za-z0-9']+", text.lower())):
        if word.isdigit() or len(word) == 1 or word in NOISE_WORDS:
            continue
        for w in ABBREVIATIONS.get(word, word).split():
            if not words or words[-1] != w:
                words.append(w)
    return words


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def compose_phrase(words: Sequence[str]) -> str:
    """Words (folder words first, then the file's) as a phrase: repeats (also singular/plural
    pairs) are dropped and a lone surface after a surface subject gets its preposition
    ("footsteps gravel" → "footsteps on gravel", "rain roof" → "rain on roof")."""
    seen: list[str] = []
    for w in words:
        if _singular(w) not in {_singular(x) for x in seen}:
            seen.append(w)
    surfaces = [w for w in seen if w in SURFACES]
    if (
        len(surfaces) == 1
        and any(w in SURFACE_SUBJECTS for w in seen)
        and not {"on", "in", "over", "across"} & set(seen)
    ):
        rest = [w for w in seen if w != surfaces[0]]
        seen = [*rest, SURFACES[surfaces[0]], surfaces[0]]
    return " ".join(seen)


def _with_folder(folder: list[str], stem: list[str]) -> list[str]:
    """Phrases joining the parent folder's words with the file's, best first."""
    stem_set = {_singular(w) for w in stem}
    if all(_singular(w) in stem_set for w in folder):
        return [compose_phrase(stem)]  # "doors/door_slam": the file already says it
    last = folder[-1]
    category = last.endswith("s") and last not in SURFACE_SUBJECTS and _singular(last) != last
    if category and not stem_set & {_singular(w) for w in folder}:
        # "birds/cuckoo": a plural folder is usually a category, not part of the sound's name
        return [compose_phrase(stem), compose_phrase(folder + stem)]
    return [compose_phrase(folder + stem)]


def label_phrases(path: Path, root: Path) -> list[str]:
    """Caption phrases a path suggests, best first (no sidecars; see :class:`LabelExpert`).

    Parent folder + file name first (the folder left out when it is a category such as
    "birds" or "sfx"), then the file name alone, the folder alone and the whole path.
    """
    rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    stem = _words(rel.name, file_name=True)
    folders = [
        _words(part) if part.lower() not in GENERIC_FOLDERS else [] for part in rel.parts[:-1]
    ]
    parent = folders[-1] if folders else []
    out: list[str] = []
    if parent and stem:
        out.extend(_with_folder(parent, stem))
    out.append(compose_phrase(stem))
    if parent:
        out.append(compose_phrase(parent))
    if any(folders):
        out.append(compose_phrase([w for f in folders for w in f] + stem))
    return unique_texts(out)


class LabelExpert:
    """Captions from sidecar texts first, then from the path (see :func:`label_phrases`)."""

    name = "label"

    def propose(self, clip: Clip) -> list[Candidate]:
        texts = unique_texts(sidecar_texts(clip.path) + label_phrases(clip.path, clip.root))
        return [Candidate(t, self.name, i) for i, t in enumerate(texts)]


# ------------------------------------------------------------------------- retrieval expert
def audioset_captions(path: Path | None = None) -> list[str]:
    """AudioSet display names as lower-case captions ("Walk, footsteps" → "walk, footsteps");
    by default the shipped bank (527 display names, one per line)."""
    if path is None and not (path := ASSETS / LABEL_BANK_NAME).is_file():
        raise MaaError(
            f"the AudioSet label bank {path} is missing from the installed package; "
            "reinstall maa or pass --caption-bank with your own captions"
        )
    names = read_captions(path, "AudioSet label bank")
    return unique_texts(re.sub(r",\s*etc\.?$", "", n).lower() for n in names)


class RetrievalExpert:
    """CLAP audio→text retrieval: the ``top_k`` bank captions closest to the clip's audio."""

    name = "retrieval"

    def __init__(self, clap: Any, bank: Sequence[str], top_k: int = 5):
        if clap is None:
            raise MaaError("the retrieval expert needs a CLAP: pass --clap PATH|BUNDLE")
        if not bank:
            raise MaaError("the retrieval expert got an empty caption bank")
        self.clap, self.bank, self.top_k = clap, list(bank), max(1, int(top_k))
        self._bank_emb: torch.Tensor | None = None

    def bank_embeddings(self) -> torch.Tensor:
        """``(N, D)`` text embeddings of the bank, computed once (the CLAP batches them)."""
        if self._bank_emb is None:
            self._bank_emb = self.clap.embed_text(self.bank).float().cpu()
        return self._bank_emb

    def propose(self, clip: Clip) -> list[Candidate]:
        emb = clip.audio_embedding
        if emb is None:
            if clip.wave is None:
                raise MaaError(f"{clip.path}: the retrieval expert needs the clip's audio")
            emb = self.clap.embed_audio([clip.wave], clip.sample_rate)[0]
        sims = self.bank_embeddings() @ emb.float().cpu()
        top = sims.topk(min(self.top_k, len(self.bank))).indices.tolist()
        return [Candidate(self.bank[j], self.name, r) for r, j in enumerate(top)]


# ------------------------------------------------------------------------- captioner expert
class CaptionerExpert:
    """A local Hugging Face audio-captioning encoder–decoder (e.g. a Whisper-style captioner).

    Loaded with ``AutoProcessor`` + ``AutoModelForSpeechSeq2Seq`` from a folder, offline. It
    proposes ``top_k`` beam-search captions per clip, best first.
    """

    def __init__(self, path: str | Path, top_k: int = 3, device: str = "cpu", max_tokens: int = 40):
        self.path = Path(path)
        self.name = "captioner"
        self.top_k, self.max_tokens, self.device = max(1, int(top_k)), max_tokens, device
        if not self.path.is_dir():
            raise MaaError(
                f"captioner:{self.path}: no such folder; pass a local Hugging Face "
                "audio-captioning model folder (config.json, weights, processor files)"
            )
        if not (self.path / "config.json").is_file():
            raise MaaError(
                f"captioner:{self.path}: no config.json; not a Hugging Face model folder"
            )
        try:
            config = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise MaaError(f"captioner:{self.path}: config.json is not valid JSON ({exc})") from exc
        if not (isinstance(config, dict) and config.get("is_encoder_decoder")):
            kind = config.get("model_type") if isinstance(config, dict) else None
            raise MaaError(
                f"captioner:{self.path}: config.json describes a {kind!r} model, not an "
                "encoder-decoder; pass an audio-captioning model such as a Whisper-style "
                "captioner saved with save_pretrained"
            )
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(self.path, local_files_only=True)
            self.model = AutoModelForSpeechSeq2Seq.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise MaaError(
                f"captioner:{self.path}: not a loadable audio encoder-decoder "
                f"(AutoProcessor + AutoModelForSpeechSeq2Seq): {str(exc).splitlines()[0]}"
            ) from exc
        self.model.to(device).eval()
        extractor = getattr(self.processor, "feature_extractor", self.processor)
        self.sample_rate = int(getattr(extractor, "sampling_rate", 16000))

    def propose(self, clip: Clip) -> list[Candidate]:
        if clip.wave is None:
            wave, _ = load_audio(clip.path, self.sample_rate)
        else:
            wave = resample(clip.wave, clip.sample_rate, self.sample_rate)
        inputs = self.processor(
            wave.numpy(), sampling_rate=self.sample_rate, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            ids = self.model.generate(
                **inputs,
                num_beams=self.top_k,
                num_return_sequences=self.top_k,
                max_new_tokens=self.max_tokens,
            )
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        texts = unique_texts(" ".join(t.split()).strip(" .") for t in texts)
        return [Candidate(t, self.name, i) for i, t in enumerate(texts)]


# ---------------------------------------------------------------------------------- factory
def build_experts(
    specs: str | Sequence[str | Expert],
    clap: Any = None,
    caption_bank: str | Path | None = None,
    top_k: int = 5,
    device: str = "cpu",
) -> list[Expert]:
    """Experts from a spec such as ``"label,retrieval,captioner:/models/cap"``, or from a list of
    such specs and ready experts (order kept)."""
    experts: list[Expert] = []
    for item in [specs] if isinstance(specs, str) else specs:
        if not isinstance(item, str):  # a ready expert
            experts.append(item)
            continue
        for spec in (s.strip() for s in item.split(",")):
            if spec == "label":
                experts.append(LabelExpert())
            elif spec == "retrieval":
                bank = read_captions(caption_bank, "--caption-bank") if caption_bank else []
                bank = unique_texts(bank + audioset_captions())
                experts.append(RetrievalExpert(clap, bank, top_k))
            elif spec.startswith("captioner:") and spec != "captioner:":
                experts.append(CaptionerExpert(spec.split(":", 1)[1], top_k, device))
            else:
                raise MaaError(
                    f"unknown expert {spec!r}; use a comma-separated list of label, retrieval, "
                    "captioner:PATH"
                )
    if not experts:
        raise MaaError("no experts given; pass --experts label,retrieval,captioner:PATH")
    return experts
