"""The corpus rules file: which files of which Debian package become which labelled clips.

``maa/assets/corpus_rules.tsv`` is a tab-separated table, one rule a row (``#`` starts a
comment line): ``package``, ``pattern``, ``category``, ``captions``, ``license``, ``options``.

* ``pattern`` is a glob on the POSIX path inside the unpacked package: ``*`` and ``?`` stay
  inside one folder, ``**`` spans folders, ``{a,b}`` matches either. ``ARCHIVE.zip!GLOB`` selects
  members of a zip archive inside the package (0 A.D. keeps its data in ``public.zip``).
* ``captions``: phrases separated by ``|``; each clip gets one, chosen by a seeded hash.
* ``category`` ``skip`` drops the matched files; the first matching rule wins.
* ``options`` (space-separated ``key=value``): ``max_files`` (seeded subsample of the matched
  files), ``max_windows`` (windows kept per long file); for a SoundFont (``.sf2``) rule:
  ``program``, ``bank`` (128 = percussion), ``keys`` (MIDI notes, one clip each), ``hold``
  (seconds a note is held) and ``phrases`` (seeded melodies over the same keys).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from maa.errors import MaaError
from maa.system import ASSETS

COLUMNS = ("package", "pattern", "category", "captions", "license", "options")
OPTION_TYPES: dict[str, Callable[[str], object]] = {  # option name -> parser of its value
    **dict.fromkeys(("max_files", "max_windows", "program", "bank", "phrases"), int),
    "hold": float,
    "keys": lambda v: tuple(int(k) for k in v.split(",") if k),
}
SKIP = "skip"
DEFAULT_RULES = ASSETS / "corpus_rules.tsv"  # the shipped rules file (package data)


@dataclass(frozen=True)
class Rule:
    """One row of the rules file (``line`` is its 1-based line number, for messages)."""

    package: str
    pattern: str
    category: str
    captions: tuple[str, ...]
    license: str
    options: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    line: int = 0

    @property
    def outer(self) -> str:
        """The part of the pattern that names a file in the package (the archive for ``!``)."""
        return self.pattern.split("!", 1)[0]

    @property
    def member(self) -> str | None:
        """The glob inside an archive, or None for a plain file pattern."""
        parts = self.pattern.split("!", 1)
        return parts[1] if len(parts) == 2 else None

    @property
    def is_soundfont(self) -> bool:
        return self.outer.lower().endswith((".sf2", ".sf3"))

    def option(self, name: str, default: object = None) -> object:
        return self.options.get(name, default)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob (``*``, ``?``, ``**``, ``[..]``, ``{a,b}``) to an anchored regex."""
    out, i, depth = [], 0, 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # zero or more whole folders
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise MaaError(f"glob {pattern!r}: '[' without a closing ']'")
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        elif c == "{":
            out.append("(?:")
            depth += 1
        elif c == "}" and depth:
            out.append(")")
            depth -= 1
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise MaaError(f"glob {pattern!r}: '{{' without a closing '}}'")
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


def _parse_options(text: str, where: str) -> dict[str, object]:
    options: dict[str, object] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if key not in OPTION_TYPES or not sep:
            known = ", ".join(OPTION_TYPES)
            raise MaaError(f"{where}: unknown option {token!r}; known: {known} (key=value)")
        try:
            options[key] = OPTION_TYPES[key](value)
        except ValueError:
            raise MaaError(f"{where}: option {token!r} needs a number") from None
    return options


def parse_rules(path: str | Path | None = None) -> list[Rule]:
    """Read and check a rules file; errors name the file, line and column."""
    path = Path(path) if path is not None else DEFAULT_RULES
    if not path.is_file():
        raise MaaError(f"{path}: no such rules file; pass --rules with a TSV like {COLUMNS}")
    rules: list[Rule] = []
    header_seen = False
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        cells = raw.split("\t")
        where = f"{path}:{number}"
        if not header_seen:
            header_seen = True
            if tuple(c.strip() for c in cells[: len(COLUMNS)]) == COLUMNS:
                continue
        if len(cells) < 5:
            raise MaaError(
                f"{where}: expected {len(COLUMNS)} tab-separated columns {COLUMNS}, "
                f"got {len(cells)} (are the separators tabs?)"
            )
        cells = [c.strip() for c in cells] + [""] * (len(COLUMNS) - len(cells))
        package, pattern, category, captions, license_, options = cells[: len(COLUMNS)]
        for name, value in (("package", package), ("pattern", pattern), ("category", category)):
            if not value:
                raise MaaError(f"{where}: column {name!r} is empty")
        phrases = tuple(p.strip() for p in captions.split("|") if p.strip())
        if category != SKIP and not phrases:
            raise MaaError(f"{where}: column 'captions' is empty; give phrases separated by '|'")
        if category != SKIP and not license_:
            raise MaaError(f"{where}: column 'license' is empty; give the SPDX id of the files")
        glob_regex(pattern.split("!", 1)[0])  # fail early on a malformed glob
        rule = Rule(package, pattern, category, phrases, license_,
                    _parse_options(options, where), number)  # fmt: skip
        if rule.is_soundfont and category != SKIP and "program" not in rule.options:
            raise MaaError(f"{where}: a SoundFont rule needs program=N (General MIDI, 0-127)")
        rules.append(rule)
    if not rules:
        raise MaaError(f"{path}: the rules file holds no rules")
    return rules


class RuleSet:
    """Rules grouped by package with compiled patterns; :meth:`match` is first-match-wins."""

    def __init__(self, rules: list[Rule]):
        self.rules = rules
        self._outer = {id(r): glob_regex(r.outer) for r in rules}
        self._member = {id(r): glob_regex(r.member) for r in rules if r.member is not None}

    @property
    def packages(self) -> list[str]:
        return list(dict.fromkeys(r.package for r in self.rules))

    def for_package(self, package: str) -> list[Rule]:
        return [r for r in self.rules if r.package == package]

    def wants_file(self, package: str, path: str) -> bool:
        """Whether any rule of ``package`` needs ``path`` (a file or an archive) unpacked."""
        return any(
            r.category != SKIP and self.match_outer(r, path) for r in self.for_package(package)
        )

    def match_outer(self, rule: Rule, path: str) -> bool:
        """Whether ``rule``'s file pattern (the archive, for ``!`` rules) matches ``path``."""
        return bool(self._outer[id(rule)].match(norm_path(path)))

    def match(self, package: str, path: str, member: str | None = None) -> Rule | None:
        """The first rule of ``package`` matching ``path`` (and ``member`` inside an archive)."""
        for rule in self.for_package(package):
            if (rule.member is None) != (member is None) or not self.match_outer(rule, path):
                continue
            if member is None or self._member[id(rule)].match(member):
                return rule
        return None


def norm_path(path: str) -> str:
    """``./usr/x`` and ``/usr/x`` → ``usr/x`` (tar members and package paths differ in this)."""
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


def stable_hash(*parts: object) -> int:
    """A process-independent 64-bit hash (Python's ``hash`` is salted per run)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def choose_caption(rule: Rule, key: str, seed: int) -> str:
    """One of the rule's phrases for the clip ``key``, the same for the same seed."""
    return rule.captions[stable_hash(seed, key) % len(rule.captions)]
