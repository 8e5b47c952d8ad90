"""Corpus loaders: a corpus root folder in, labelled clips out.

Each corpus keeps its original file names, and labels come from each corpus's own naming
rules, mapped into the model's 8 classes:

| corpus  | file name                   | emotion codes -> class                                   |
|---------|-----------------------------|----------------------------------------------------------|
| RAVDESS | Actor_NN/03-01-EE-II-SS-RR-AA | 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry,       |
|         |                             | 06 fearful, 07 disgust, 08 surprised; song (VV=02) and   |
|         |                             | video files (MM!=03) are left out                        |
| CREMA-D | 1001_DFA_ANG_XX             | ANG angry, DIS disgust, FEA fearful, HAP happy,          |
|         |                             | NEU neutral, SAD sad (no calm, no surprised)             |
| TESS    | OAF_back_angry              | angry, disgust, fear->fearful, happy, neutral,           |
|         |                             | ps->surprised, sad                                       |
| SAVEE   | DC_a01 or DC/a01            | a angry, d disgust, f fearful, h happy, n neutral,       |
|         |                             | sa sad, su surprised                                     |
| EmoDB   | 03a01Fa                     | W angry, E disgust, A fearful, F happy, N neutral,       |
|         |                             | T sad; L (boredom) has no class and is left out          |
| nEMO    | samples/EB0_anger_1         | anger angry, fear fearful, happiness happy, neutral,     |
|         |                             | sadness sad, surprised (no calm, no disgust)             |
| ASED    | 05Angry/a5-03-01-02-50      | n neutral, f fearful, h happy, s sad, a angry; the       |
|         |                             | speaker is the (gender, number) pair                     |

nEMO's gender comes from its `data.tsv` when present (matched on the file stem: the
distributed list says `.wav` where a re-encoded copy may hold `.ogg`).

Names that don't parse are counted and reported, never guessed.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ser.config import LABELS

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".webm", ".m4a", ".mp4", ".aac"}


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    speaker: str  # "<corpus>:<id>", unique across corpora
    corpus: str
    gender: str = "unknown"  # "female", "male" or "unknown"; used to balance splits


@dataclass
class Scan:
    """What a loader found: usable clips, files deliberately left out, names it couldn't read."""

    clips: list[Clip] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)  # reason -> count
    unparsed: list[Path] = field(default_factory=list)

    def extend(self, other: Scan) -> None:
        self.clips.extend(other.clips)
        self.excluded.update(other.excluded)
        self.unparsed.extend(other.unparsed)

    def summary(self) -> str:
        by_label = Counter(c.label for c in self.clips)
        lines = [
            f"{len(self.clips)} clips from {len({c.speaker for c in self.clips})} speakers: "
            + ", ".join(f"{k} {by_label[k]}" for k in LABELS if by_label[k])
        ]
        for reason, n in sorted(self.excluded.items()):
            lines.append(f"left out {n}: {reason}")
        if self.unparsed:
            examples = ", ".join(p.name for p in self.unparsed[:3])
            lines.append(f"unparsed names {len(self.unparsed)} (e.g. {examples})")
        return "\n".join(lines)


# A parser maps one audio file to a Clip, to a reason string (deliberately left out),
# or to None (the name doesn't follow the corpus's rules).
Parser = Callable[[Path], "Clip | str | None"]

_RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}  # fmt: skip


def parse_ravdess(path: Path) -> Clip | str | None:
    m = _RAVDESS.match(path.stem)
    if not m or m[3] not in _RAVDESS_EMOTIONS:
        return None
    modality, channel, emotion, _, _, _, actor = m.groups()
    if modality != "03":
        return "RAVDESS audio-visual or video-only file"
    if channel != "01":
        return "RAVDESS song"
    gender = "male" if int(actor) % 2 else "female"
    return Clip(path, _RAVDESS_EMOTIONS[emotion], f"ravdess:{actor}", "ravdess", gender)


_CREMAD = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_CREMAD_EMOTIONS = {
    "ANG": "angry", "DIS": "disgust", "FEA": "fearful",
    "HAP": "happy", "NEU": "neutral", "SAD": "sad",
}  # fmt: skip


def parse_cremad(path: Path) -> Clip | None:
    m = _CREMAD.match(path.stem)
    if not m or m[3] not in _CREMAD_EMOTIONS:
        return None
    return Clip(path, _CREMAD_EMOTIONS[m[3]], f"cremad:{m[1]}", "cremad")


_TESS = re.compile(r"^(OAF|YAF)_([A-Za-z]+)_([A-Za-z]+)$", re.IGNORECASE)
_TESS_EMOTIONS = {
    "angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
    "neutral": "neutral", "ps": "surprised", "sad": "sad",
}  # fmt: skip


def parse_tess(path: Path) -> Clip | None:
    m = _TESS.match(path.stem)
    if not m or m[3].lower() not in _TESS_EMOTIONS:
        return None
    return Clip(path, _TESS_EMOTIONS[m[3].lower()], f"tess:{m[1].upper()}", "tess", "female")


_SAVEE = re.compile(r"^(?:([A-Z]{2})_)?(sa|su|a|d|f|h|n)(\d\d)$")
_SAVEE_EMOTIONS = {
    "a": "angry", "d": "disgust", "f": "fearful", "h": "happy",
    "n": "neutral", "sa": "sad", "su": "surprised",
}  # fmt: skip
_SAVEE_SPEAKERS = {"DC", "JE", "JK", "KL"}


def parse_savee(path: Path) -> Clip | None:
    m = _SAVEE.match(path.stem)
    if not m:
        return None
    speaker = m[1] or path.parent.name  # DC_a01.wav, or AudioData/DC/a01.wav
    if speaker not in _SAVEE_SPEAKERS:
        return None
    return Clip(path, _SAVEE_EMOTIONS[m[2]], f"savee:{speaker}", "savee", "male")


_EMODB = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])$")
_EMODB_EMOTIONS = {
    "W": "angry", "E": "disgust", "A": "fearful", "F": "happy", "N": "neutral", "T": "sad",
}
_EMODB_GENDER = {
    "03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
    "12": "male", "13": "female", "14": "female", "15": "male", "16": "female",
}  # fmt: skip


def parse_emodb(path: Path) -> Clip | str | None:
    m = _EMODB.match(path.stem)
    if not m:
        return None
    if m[3] == "L":
        return "EmoDB boredom (no class in the 8-class set)"
    gender = _EMODB_GENDER.get(m[1], "unknown")
    return Clip(path, _EMODB_EMOTIONS[m[3]], f"emodb:{m[1]}", "emodb", gender)


_NEMO = re.compile(r"^([A-Z]{2}\d)_(anger|fear|happiness|neutral|sadness|surprised)_(\d+)$")
_NEMO_EMOTIONS = {
    "anger": "angry", "fear": "fearful", "happiness": "happy",
    "neutral": "neutral", "sadness": "sad", "surprised": "surprised",
}  # fmt: skip


@lru_cache(maxsize=8)
def _nemo_genders(root: Path) -> dict[str, str]:
    """speaker -> gender from nEMO's data.tsv (speaker_id has leading spaces there)."""
    table = root / "data.tsv"
    if not table.is_file():
        return {}
    genders = {}
    with table.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            speaker, gender = (row.get("speaker_id") or "").strip(), (row.get("gender") or "").strip()
            if speaker and gender in ("female", "male"):
                genders[speaker] = gender
    return genders


def parse_nemo(path: Path) -> Clip | None:
    m = _NEMO.match(path.stem)
    if not m:
        return None
    root = path.parent.parent if path.parent.name == "samples" else path.parent
    gender = _nemo_genders(root).get(m[1], "unknown")
    return Clip(path, _NEMO_EMOTIONS[m[2]], f"nemo:{m[1]}", "nemo", gender)


_ASED = re.compile(r"^([nfhsa])([1-5])-(\d\d)-(\d\d)-(0[12])-(\d\d)$")
_ASED_EMOTIONS = {"n": "neutral", "f": "fearful", "h": "happy", "s": "sad", "a": "angry"}
_ASED_FOLDERS = {"n": "1", "f": "2", "h": "3", "s": "4", "a": "5"}


def parse_ased(path: Path) -> Clip | None:
    m = _ASED.match(path.stem[:1].lower() + path.stem[1:])  # one file's letter is upper-case
    if not m or _ASED_FOLDERS[m[1]] != m[2]:
        return None
    gender = "female" if m[5] == "01" else "male"
    # speaker numbers repeat across genders: the pair is the speaker
    return Clip(path, _ASED_EMOTIONS[m[1]], f"ased:{m[5]}-{m[6]}", "ased", gender)


PARSERS: dict[str, Parser] = {
    "ravdess": parse_ravdess,
    "cremad": parse_cremad,
    "tess": parse_tess,
    "savee": parse_savee,
    "emodb": parse_emodb,
    "nemo": parse_nemo,
    "ased": parse_ased,
}


def scan_corpus(corpus: str, root: str | Path) -> Scan:
    """Every audio file under `root`, parsed by `corpus`'s naming rules."""
    if corpus not in PARSERS:
        raise ValueError(f"unknown corpus {corpus!r}; choose from {sorted(PARSERS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{corpus} root {root} is not a folder")
    parse = PARSERS[corpus]
    scan = Scan()
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        result = parse(path)
        if isinstance(result, Clip):
            scan.clips.append(result)
        elif isinstance(result, str):
            scan.excluded[result] += 1
        else:
            scan.unparsed.append(path)
    return scan


def scan_corpora(specs: Iterable[tuple[str, str | Path]]) -> Scan:
    """Several (corpus, root) pairs at once."""
    scan = Scan()
    for corpus, root in specs:
        scan.extend(scan_corpus(corpus, root))
    return scan


def parse_corpus_arg(text: str) -> tuple[str, Path]:
    """`name=PATH` from the command line."""
    name, sep, path = text.partition("=")
    if not sep or name not in PARSERS:
        raise ValueError(f"expected NAME=PATH with NAME in {sorted(PARSERS)}, got {text!r}")
    return name, Path(path)
