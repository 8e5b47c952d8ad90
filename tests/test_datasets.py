"""Loaders: every corpus layout on generated fixtures, and the real corpora's counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser.config import LABELS
from ser.datasets import parse_corpus_arg, scan_corpora, scan_corpus
from tests.conftest import need


def touch_wavs(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(800, dtype=np.float32), 16_000)


def test_ravdess_layout(tmp_path):
    touch_wavs(tmp_path, [
        "Actor_01/03-01-01-01-01-01-01.wav",  # neutral, male
        "Actor_02/03-01-08-02-02-02-02.wav",  # surprised, female
        "Actor_02/03-02-03-01-01-01-02.wav",  # song: left out
        "Actor_02/01-01-03-01-01-01-02.wav",  # audio-visual: left out
        "Actor_02/03-01-09-01-01-01-02.wav",  # emotion 09 doesn't exist
        "Actor_02/notes.wav",
    ])  # fmt: skip
    scan = scan_corpus("ravdess", tmp_path)
    assert [(c.label, c.speaker, c.gender) for c in scan.clips] == [
        ("neutral", "ravdess:01", "male"), ("surprised", "ravdess:02", "female")]  # fmt: skip
    assert scan.excluded == Counter({"RAVDESS song": 1, "RAVDESS audio-visual or video-only file": 1})
    assert sorted(p.name for p in scan.unparsed) == ["03-01-09-01-01-01-02.wav", "notes.wav"]
    assert "unparsed names 2" in scan.summary()


def test_cremad_layout(tmp_path):
    touch_wavs(tmp_path, ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1091_TSI_NEU_LO.wav",
                          "AudioWAV/1002_IEO_HAP_HI.wav", "AudioWAV/1003_DFA_XXX_XX.wav"])  # fmt: skip
    scan = scan_corpus("cremad", tmp_path)
    assert sorted((c.label, c.speaker) for c in scan.clips) == [
        ("angry", "cremad:1001"), ("happy", "cremad:1002"), ("neutral", "cremad:1091")]  # fmt: skip
    assert len(scan.unparsed) == 1


def test_tess_layout(tmp_path):
    touch_wavs(tmp_path, ["OAF_angry/OAF_back_angry.wav", "YAF_pleasant_surprise/YAF_bean_ps.wav",
                          "OAF_Fear/OAF_dog_fear.wav", "YAF_sad/YAF_dog_Sad.wav", "x/OAF_back_bored.wav"])  # fmt: skip
    scan = scan_corpus("tess", tmp_path)
    assert sorted((c.label, c.speaker) for c in scan.clips) == [
        ("angry", "tess:OAF"), ("fearful", "tess:OAF"), ("sad", "tess:YAF"), ("surprised", "tess:YAF")]  # fmt: skip
    assert all(c.gender == "female" for c in scan.clips) and len(scan.unparsed) == 1


def test_savee_layouts(tmp_path):
    touch_wavs(tmp_path, ["ALL/DC_a01.wav", "ALL/JE_sa02.wav", "AudioData/KL/su15.wav", "AudioData/JK/n30.wav",
                          "ALL/XX_a01.wav", "ALL/DC_b01.wav"])  # fmt: skip
    scan = scan_corpus("savee", tmp_path)
    assert sorted((c.label, c.speaker) for c in scan.clips) == [
        ("angry", "savee:DC"), ("neutral", "savee:JK"), ("sad", "savee:JE"), ("surprised", "savee:KL")]  # fmt: skip
    assert len(scan.unparsed) == 2


def test_emodb_layout(tmp_path):
    touch_wavs(tmp_path, ["wav/03a01Wa.wav", "wav/08b02Ea.wav", "wav/16a05Lc.wav", "wav/10a07Ab.wav", "wav/zz.wav"])
    scan = scan_corpus("emodb", tmp_path)
    assert sorted((c.label, c.speaker, c.gender) for c in scan.clips) == [
        ("angry", "emodb:03", "male"), ("disgust", "emodb:08", "female"), ("fearful", "emodb:10", "male")]  # fmt: skip
    assert scan.excluded == Counter({"EmoDB boredom (no class in the 8-class set)": 1})


def test_several_corpora_at_once(tmp_path):
    touch_wavs(tmp_path / "r", ["Actor_03/03-01-05-01-01-01-03.wav"])
    touch_wavs(tmp_path / "e", ["03a01Fa.wav"])
    scan = scan_corpora([("ravdess", tmp_path / "r"), ("emodb", tmp_path / "e")])
    assert {c.corpus for c in scan.clips} == {"ravdess", "emodb"}
    assert all(c.label in LABELS for c in scan.clips)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown corpus"):
        scan_corpus("timit", tmp_path)
    with pytest.raises(FileNotFoundError):
        scan_corpus("ravdess", tmp_path / "missing")
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_corpus_arg("ravdess")


def test_real_ravdess(ravdess_root):
    scan = scan_corpus("ravdess", ravdess_root)
    assert len(scan.clips) == 1200 and not scan.unparsed
    counts = Counter(c.label for c in scan.clips)
    assert counts["neutral"] == 80 and all(counts[k] == 160 for k in LABELS if k != "neutral")
    assert len({c.speaker for c in scan.clips}) == 20


def test_real_emodb(emodb_root):
    scan = scan_corpus("emodb", emodb_root)
    assert len(scan.clips) + sum(scan.excluded.values()) == 243 and not scan.unparsed
    assert {c.label for c in scan.clips} == {"angry", "disgust", "fearful", "happy", "neutral", "sad"}


def _opus(root: Path, names: list[str]) -> None:
    """Ogg Opus fixtures, as the shared nEMO and ASED copies are encoded."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(1600, dtype=np.float32), 16_000, format="OGG", subtype="OPUS")


def test_nemo_layout(tmp_path):
    _opus(tmp_path, ["samples/EB0_anger_1.ogg", "samples/WR0_surprised_64.ogg", "samples/KD0_sadness_3.ogg",
                     "samples/KD0_boredom_3.ogg", "samples/notes.ogg"])  # fmt: skip
    (tmp_path / "data.tsv").write_text(
        "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"
        "WR0_surprised_64.wav\tsurprised\tA.\ta\t        WR0\tmale\t23\n"
        "EB0_anger_1.wav\tanger\tB.\tb\t        EB0\tfemale\t27\n", encoding="utf-8")  # fmt: skip
    scan = scan_corpus("nemo", tmp_path)
    assert sorted((c.label, c.speaker, c.gender) for c in scan.clips) == [
        ("angry", "nemo:EB0", "female"), ("sad", "nemo:KD0", "unknown"), ("surprised", "nemo:WR0", "male")]  # fmt: skip
    assert sorted(p.name for p in scan.unparsed) == ["KD0_boredom_3.ogg", "notes.ogg"]


def test_ased_layout(tmp_path):
    _opus(tmp_path, ["05Angry/a5-03-01-02-50.ogg", "01Neutral/n1-01-01-01-50.ogg", "04Sad/S4-04-02-01-29.ogg",
                     "02Fearful/f3-01-01-01-01.ogg", "03Happy/h3-01-01-03-01.ogg"])  # fmt: skip
    scan = scan_corpus("ased", tmp_path)
    # number 50 under both genders is two speakers; the upper-case S is the corpus's own quirk
    assert sorted((c.label, c.speaker, c.gender) for c in scan.clips) == [
        ("angry", "ased:02-50", "male"), ("neutral", "ased:01-50", "female"), ("sad", "ased:01-29", "female")]  # fmt: skip
    assert len(scan.unparsed) == 2  # folder number disagrees with the letter; gender 03


def test_real_nemo(data_dir):
    scan = scan_corpus("nemo", need(data_dir / "nemo"))
    assert len(scan.clips) == 4481 and not scan.unparsed and len({c.speaker for c in scan.clips}) == 9
    assert {c.label for c in scan.clips} == {"angry", "fearful", "happy", "neutral", "sad", "surprised"}
    assert {c.gender for c in scan.clips} == {"female", "male"}


def test_real_ased(data_dir):
    scan = scan_corpus("ased", need(data_dir / "ased"))
    assert len(scan.clips) == 2474 and not scan.unparsed
    assert Counter(c.label for c in scan.clips) == Counter(
        {"neutral": 522, "fearful": 510, "happy": 486, "angry": 486, "sad": 470})
    assert len({c.speaker for c in scan.clips}) == 70  # 65 people; some numbers under both genders
