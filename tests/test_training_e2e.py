"""A tiny end-to-end run on real speech: train, evaluate, export with parity, infer.

Four RAVDESS actors, a few clips each, one epoch: this checks the recipe works end to
end, not accuracy (see the model card for that).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_corpus(ravdess_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("ravdess")
    for actor in ("Actor_01", "Actor_02", "Actor_03", "Actor_04"):
        (root / actor).mkdir()
        for path in sorted((ravdess_root / actor).glob("*.flac"))[::6]:  # 10 clips, all emotions
            (root / actor / path.name).symlink_to(path)
    return root


@pytest.fixture(autouse=True)
def feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SER_DATA_WORKERS", "1")


def test_train_evaluate_export_infer(tiny_corpus, emodb_root, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from training import evaluate, train

    # two members with rotated validation speakers: the ensemble path, end to end
    overrides = ["--set", "epochs=2", "--set", "train_copies=1", "--set", "patience=5", "--set", "ensemble=2"]
    run = tmp_path / "run"
    train.main(["--corpus", f"ravdess={tiny_corpus}", "--folds", "4", "--out", str(run), *overrides])
    for name in ("model.keras", "config.json", "metrics.json", "data.json", "training_curves.png",
                 "normalisation.json", "classification_report.json", "confusion_matrix.png", "MODEL_CARD.md"):
        assert (run / name).exists(), name
    card = (run / "MODEL_CARD.md").read_text()
    assert "Not measured for this model" in card and "CC BY-NC-SA 4.0" in card
    assert len(json.loads((run / "normalisation.json").read_text())["mean"]) == 40
    metrics = json.loads((run / "metrics.json").read_text())
    data = json.loads((run / "data.json").read_text())
    assert not set(data["train"]["speakers"]) & set(data["val"]["speakers"])
    assert 0.05 <= metrics["temperature"] <= 20 and len(metrics["history"]) == 2
    assert 1 <= metrics["best_epoch"] <= 2 and len(metrics["member_best_epoch"]) == 2
    first, second = (set(v) for v in data["member_val_speakers"])
    assert first == set(data["val"]["speakers"]) and not first & second

    ev = tmp_path / "eval"
    evaluate.main(["--corpus", f"ravdess={tiny_corpus}", "--folds", "4", "--max-folds", "1", "--out", str(ev),
                   "--save-models", str(ev / "models"), *overrides])  # fmt: skip
    result = json.loads((ev / "evaluation.json").read_text())
    fold = result["speaker_cv"]["folds"][0]
    assert not set(fold["test_speakers"]) & set(fold["val_speakers"])
    # merging again without the folds' --set keeps the settings the folds recorded
    evaluate.main(["--corpus", f"ravdess={tiny_corpus}", "--folds", "4", "--run-folds", "", "--out", str(ev)])
    merged = json.loads((ev / "evaluation.json").read_text())
    assert merged["config"]["ensemble"] == 2 and merged["speaker_cv"]["protocol"] == result["speaker_cv"]["protocol"]
    kept = json.loads((ev / "models" / "fold_0" / "data.json").read_text())  # a teacher for fold 0's student
    assert kept["test"]["speakers"] == fold["test_speakers"] and not set(kept["train"]["speakers"]) & set(
        fold["test_speakers"] + fold["val_speakers"])
    assert [sorted(h) for h in fold["history"]] == [
        ["epoch", "loss", "test_nll", "test_ua", "train_accuracy", "val_nll", "val_ua"]] * 2
    assert len(fold["member_history"]) == 2
    assert 0 <= result["speaker_cv"]["summary"]["unweighted_accuracy"]["mean"] <= 1
    assert (ev / "confusion_matrix.png").exists()
    # every degradation and clip length scored on the test speakers, calibration per corpus
    views = result["speaker_cv"]["by_view"]
    assert set(views) == {"clean", "cond:reverb", "cond:noise", "cond:phone", "cond:mp3", "cond:opus",
                          "len:1.0", "len:2.0", "len:4.0", "len:10.0"}  # fmt: skip
    assert set(views["clean"]) == {"all", "ravdess"} and "ece_uncalibrated" in views["clean"]["ravdess"]
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").glob("ravdess-train-*.npz"))
    # the reporting scripts read what evaluate wrote: a fold alone, against itself, and the table
    from scripts import accuracy_table, fold_table

    capsys.readouterr()  # what training printed
    fold_table.main([str(ev / "fold_0.json"), "--against", str(ev / "evaluation.json")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["view", "ravdess", "all"] and len(lines) == 2 + len(views) + 1
    r, a = (fold_table.cell(fold["views"], "clean", c).strip() for c in ("ravdess", "all"))
    assert lines[2].split() == ["clean", r, "/", r, a, "/", a]
    other = dict(fold, test_speakers=fold["val_speakers"])
    (tmp_path / "other_fold.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="tested different speakers"):
        fold_table.main([str(tmp_path / "other_fold.json"), "--against", str(ev / "evaluation.json")])
    accuracy_table.main([str(ev / "evaluation.json")])
    assert f"| as recorded | {r} ± 0.0 | {a} ± 0.0 |" in capsys.readouterr().out
    # the kept fold model probed: scored as the evaluation scored it, a clip must give back
    # what the fold recorded (the script stops otherwise), here and under the telephone
    from scripts import probe_fold_model as probe

    ramp = np.arange(10, dtype=np.float32)
    assert probe.phase_windows(ramp, 2)[1][:12].tolist() == [5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6]
    kept = [str(ev / "fold_0.json"), str(ev / "models" / "fold_0")]
    phases = probe.main(["phases", "--corpus", f"ravdess={tiny_corpus}", *kept, "--seconds", "1.0"])
    recorded = 100 * fold["views"]["len:1.0"]["ravdess"]["unweighted_accuracy"]
    assert phases[("1 s, 1 phase", "ravdess")] == [pytest.approx(recorded, abs=0.5)]
    assert len(phases) == 2 * len(probe.PHASES)
    parts = probe.main(["phone", "--corpus", f"ravdess={tiny_corpus}", *kept])
    assert {v for v, _ in parts} == set(probe.PHONE_PARTS)
    assert parts[("telephone (all)", "all")] == [pytest.approx(100 * fold["views"]["cond:phone"]["all"]["unweighted_accuracy"], abs=0.5)]
    assert "UA %, mean over 1 fold(s)" in capsys.readouterr().out

    loco = tmp_path / "loco"
    evaluate.main(["--corpus", f"ravdess={tiny_corpus}", "--corpus", f"emodb={emodb_root}", "--folds", "4",
                   "--run-folds", "", "--leave-out", "emodb", "--out", str(loco), *overrides[:6]])  # fmt: skip
    part = json.loads((loco / "evaluation.json").read_text())["leave_one_corpus_out"]["emodb"]
    assert part["views"]["clean"]["emodb"]["n"] == 208 and "ravdess" not in part["views"]["clean"]
    assert part["classes"] == ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    # the saved window logits give back what each run scored: unscaled, and at its own temperature
    from scripts import fold_posthoc

    ece = fold_posthoc.temperature([str(ev / "fold_0.json"), str(loco / "loco_emodb.json")])
    assert set(ece) == {"unscaled", "window-weighted", "corpus-balanced"}
    (f_raw, l_raw), (f_fit, l_fit) = ece["unscaled"], ece["window-weighted"]
    assert set(f_raw) == {"ravdess", "all"} and set(l_raw) == {"emodb", "all"}
    for rows, saved in (((f_raw, f_fit), fold["views"]["clean"]["all"]), ((l_raw, l_fit), part["views"]["clean"]["emodb"])):
        assert rows[0]["all"] == pytest.approx(saved["ece_uncalibrated"], abs=2e-3)
        assert rows[1]["all"] == pytest.approx(saved["ece"], abs=5e-3)

    cc = tmp_path / "cross"
    evaluate.main(["--corpus", f"ravdess={tiny_corpus}", "--folds", "4", "--run-folds", "", "--cross-corpus",
                   f"emodb={emodb_root}", "--cross-corpus-run", str(run), "--out", str(cc)])  # fmt: skip
    cross = json.loads((cc / "evaluation.json").read_text())["cross_corpus"]
    assert cross["test_corpus_classes"] == ["angry", "disgust", "fearful", "happy", "neutral", "sad"]
    assert cross["all_8_outputs"]["n"] == 208  # every EmoDB clip but boredom
    assert "speaker_cv" not in json.loads((cc / "evaluation.json").read_text())

    from export import export_onnx

    store = tmp_path / "store"
    export_onnx.main(["--run", str(run), "--evaluation", str(ev / "evaluation.json"),
                      "--parity-corpus", f"ravdess={tiny_corpus}", "--parity-clips", "8", "--quantize-check",
                      "--out", str(store)])  # fmt: skip
    report = json.loads((store / "export_report.json").read_text())
    # the members validated on different speakers, so every speaker taught one of them: int8
    # cannot be compared with fp32 on unseen clips and is not shipped on seen ones
    q = report["quantization"]
    assert "ravdess_not_scored" in q and q["ua_loss_points"] is None and not q["ship_int8"]
    assert not (store / "ser_cnn_bilstm.fp32.onnx").exists()  # float32 ships: no second graph
    assert report["parity"]["max_abs_diff"] < 1e-5 and report["parity"]["top_class_agrees"]
    assert "LSTM" in report["ops"] and "Loop" not in report["ops"] and "Scan" not in report["ops"]
    assert "Model card" in (store / "MODEL_CARD.md").read_text()

    from ser.inference import EmotionModel

    model = EmotionModel(store / "ser_cnn_bilstm.onnx")
    assert model.info.metadata["model_version"] == report["model_version"]
    result = model.analyse(next(tiny_corpus.glob("Actor_01/*.flac")))
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    batch = np.zeros((3, 173, 40), np.float32)
    assert model.predict_features(batch).shape == (3, 8)


def test_tuning_reports_every_trial(tiny_corpus, tmp_path):
    pytest.importorskip("tensorflow")
    from training import tune

    tune.main(["--corpus", f"ravdess={tiny_corpus}", "--folds", "4", "--out", str(tmp_path),
               "--grid", "dropout=0.2,0.4", "--set", "epochs=1", "--set", "train_copies=1", "--set", "ensemble=1"])  # fmt: skip
    result = json.loads((tmp_path / "tuning.json").read_text())
    assert [t["overrides"]["dropout"] for t in sorted(result["trials"], key=lambda t: t["trial"])] == ["0.2", "0.4"]
    assert all(0 <= t["val_ua"] <= 1 for t in result["trials"])
    assert result["trials"][0]["val_ua"] >= result["trials"][1]["val_ua"]


def test_distilled_student_learns_the_teachers_answers_on_its_own_split(tiny_corpus, tmp_path):
    pytest.importorskip("tensorflow")
    from training import train
    from training.config import TrainConfig
    from training.data import store_for
    from training.splits import holdout_split, pick_validation, speaker_folds

    common = ["--corpus", f"ravdess={tiny_corpus}", "--folds", "4", "--set", "epochs=1", "--set", "train_copies=2",
              "--set", "ensemble=1"]  # fmt: skip
    teacher = tmp_path / "teacher"
    train.main([*common, "--out", str(teacher)])

    cfg = TrainConfig.with_overrides([f"distill_from={teacher}", "distill_weight=0.6", "train_copies=2"])
    clips = train.load_clips([f"ravdess={tiny_corpus}"])
    folds = speaker_folds(clips, 4, cfg.seed)
    split = holdout_split(clips, pick_validation(clips, folds[0], 2))  # the teacher's own split
    store = store_for(clips, cfg)
    soft = train.teacher_targets(store, split, split.train, cfg)
    assert soft.shape == (len(split.train), 2, 8)
    np.testing.assert_allclose(soft.sum(axis=-1), 1, atol=1e-5)
    y = np.array([train.LABELS.index(clips[i].label) for i in split.train])
    probs = np.full(len(y), 1 / len(y))
    x, targets = train._Batches(store.copies(split.train), y, probs, cfg, 0, soft)[0]
    np.testing.assert_allclose(targets.sum(axis=1), 1, atol=1e-5)
    hard = targets.max(axis=1)  # 0.4 of the label plus the teacher's share of it
    assert (hard >= 0.4).all() and (hard < 1).all()

    # clean_copies: each clip's clean window (what test and validation see) joins its crops
    both = store.copies(split.train, clean=1)
    assert both.shape[1] == 3 and (both[:, :2] == store.copies(split.train)).all()
    whole = store.view("clean")
    assert all((both[k, 2] == whole[i][len(whole[i]) // 2]).all() for k, i in enumerate(split.train))
    with_clean = dataclasses.replace(cfg, clean_copies=1)
    assert train.teacher_targets(store, split, split.train, with_clean).shape == (len(split.train), 3, 8)

    # with test speakers, validation speakers only calibrate and may be the teacher's own;
    # the test speakers never
    from training.splits import Split

    known = clips[split.train[0]].speaker  # the teacher trained on this one
    mine = [i for i in split.train if clips[i].speaker == known]
    rest = [i for i in split.train if clips[i].speaker != known]
    fold = Split(rest, mine, list(split.val), tuple(sorted(split.val_speakers)), (known,))
    assert train.teacher_targets(store, fold, rest[:3], cfg).shape == (3, 2, 8)
    leaky = Split(rest, list(split.val), mine, (known,), tuple(sorted(split.val_speakers)))
    with pytest.raises(ValueError, match="trained on held-out speakers"):
        train.teacher_targets(store, leaky, rest[:3], cfg)

    student = tmp_path / "student"
    train.main([*common, "--set", f"distill_from={teacher}", "--out", str(student)])
    assert json.loads((student / "config.json").read_text())["train"]["distill_from"] == str(teacher)

    # the exported student names its teacher (by the hash that ends the teacher's version)
    import keras

    from export import export_onnx
    from ser.inference import metadata_json, read_model_info

    store = tmp_path / "store"
    export_onnx.main(["--run", str(student), "--parity-corpus", f"ravdess={tiny_corpus}", "--parity-clips", "4",
                      "--out", str(store)])  # fmt: skip
    told = metadata_json(read_model_info(store / "ser_cnn_bilstm.onnx"), "teacher")
    digest = export_onnx.weights_digest(keras.models.load_model(teacher / "model.keras"))
    assert told == {"weights_digest": digest, "members": 1, "weight": 0.7}
    assert "Distilled: it learned from a teacher" in (store / "MODEL_CARD.md").read_text()

    # validating on speakers the teacher learned from would leak them into the student
    with pytest.raises(ValueError, match="trained on held-out speakers"):
        train.main([*common, "--set", f"distill_from={teacher}", "--val-fold", "1", "--out", str(tmp_path / "x")])


def test_a_rotated_ensemble_taught_every_speaker_one_of_its_members_trained_on():
    from training.splits import speakers_taught

    shared = {"train": {"speakers": ["a", "b"]}, "val": {"speakers": ["v"]}, "member_val_speakers": [["v"], ["v"]]}
    assert speakers_taught(shared) == {"a", "b"}
    rotated = shared | {"member_val_speakers": [["v"], ["a"]]}  # member 1 learned v
    assert speakers_taught(rotated) == {"a", "b", "v"}
    # runs since the members' training speakers are written down: those lists decide
    within = shared | {"member_val_speakers": [["a"], ["b"]], "member_train_speakers": [["b"], ["a"]]}
    assert speakers_taught(within) == {"a", "b"}
    from export.export_onnx import unseen_speakers

    assert unseen_speakers(within) == {"v"} and unseen_speakers(rotated) == set()


def test_a_training_killed_mid_run_resumes_at_its_last_finished_epoch(tiny_corpus, tmp_path):
    """A real SIGKILL during a fold's training; the same command run again carries on from
    the checkpoint, keeps the epochs already trained and removes the checkpoint at the end."""
    pytest.importorskip("tensorflow")
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "training.evaluate", "--corpus", f"ravdess={tiny_corpus}", "--folds", "4",
           "--run-folds", "0", "--out", str(out), "--set", "epochs=12", "--set", "train_copies=1",
           "--set", "patience=50", "--set", "ensemble=1"]  # fmt: skip
    env = {**os.environ, "SER_TF_THREADS": "1"}
    saved = out / "fold_0.checkpoint" / "member0.npz"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while proc.poll() is None and not saved.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    with np.load(saved) as z:
        before = json.loads(str(z["meta"]))
    assert 1 <= before["epoch"] < 12 and not (out / "fold_0.json").exists()

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed member 0 from {saved} after epoch {before['epoch']} of 12" in again.stdout
    history = json.loads((out / "fold_0.json").read_text())["history"]
    assert [row["epoch"] for row in history] == list(range(1, 13))
    assert history[: before["epoch"]] == before["history"]  # the killed run's epochs, not retrained
    assert not saved.parent.exists()

    # other settings never pick up a checkpoint they did not write
    from training.checkpoint import MemberCheckpoint, MemberState

    state = MemberState(3, False, False, [{"epoch": 1}], -1.0, 1, {}, [np.ones(2)], [np.zeros(1)], None)
    MemberCheckpoint(saved, "settings a").save(state)
    assert MemberCheckpoint(saved, "settings a").load().weights[0].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="other settings"):
        MemberCheckpoint(saved, "settings b").load()
