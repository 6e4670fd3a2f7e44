import json

import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.training import rundir
from kzoo.training.config import TrainConfig
from kzoo.training.evaluation import classification_report
from kzoo.training.schedules import WarmupSchedule, make_schedule


def lr(schedule, step):
    return float(np.asarray(schedule(step)))


def test_cosine_with_warmup_shape():
    s = make_schedule("cosine", 1.0, epochs=10, steps_per_epoch=10, warmup_epochs=2)
    assert lr(s, 0) == pytest.approx(1 / 20)
    assert lr(s, 19) == pytest.approx(1.0)
    assert lr(s, 20) == pytest.approx(1.0)
    assert lr(s, 60) == pytest.approx(0.5)  # half-way through the cosine part
    assert lr(s, 100) == pytest.approx(0.0, abs=1e-7)


def test_multistep_milestones_and_gamma():
    s = make_schedule("multistep", 0.1, epochs=300, steps_per_epoch=2, milestones=[150, 225], gamma=0.1)
    assert lr(s, 299) == pytest.approx(0.1)
    assert lr(s, 300) == pytest.approx(0.01)
    assert lr(s, 450) == pytest.approx(0.001)


def test_schedule_config_round_trip():
    s = make_schedule("multistep", 0.1, epochs=4, steps_per_epoch=10, milestones=[2])
    clone = WarmupSchedule(**s.get_config())
    assert [lr(clone, t) for t in (0, 19, 20, 39)] == [lr(s, t) for t in (0, 19, 20, 39)]


@pytest.mark.parametrize("field, value, text", [
    ("val_split", 1.5, "--val-split must be between 0 and 1"),
    ("val_split", 0.0, "--val-split must be between 0 and 1"),
    ("optimizer", "adagrad", "--optimizer 'adagrad' is not supported"),
    ("epochs", 0, "--epochs must be at least 1"),
    ("warmup", 5, "--warmup must be 0 or fewer epochs"),
    ("milestones", [5, 2], "--milestones must be increasing"),
])
def test_bad_config_is_one_line(field, value, text):
    cfg = TrainConfig(epochs=5, schedule="multistep" if field == "milestones" else "cosine")
    setattr(cfg, field, value)
    with pytest.raises(KzooError) as info:
        cfg.validate()
    assert text in str(info.value) and "\n" not in str(info.value)


def test_run_dir_refuses_finished_and_foreign_dirs(tmp_path):
    cfg = TrainConfig(out=str(tmp_path / "run"))
    assert rundir.prepare(cfg) is False  # new run
    assert rundir.prepare(cfg) is False  # nothing trained yet: a fresh start again
    (tmp_path / "run" / "history.csv").write_text("epoch,loss\n0,2.0\n")
    assert rundir.prepare(cfg) is True  # same settings after training: resume
    (tmp_path / "run" / "metrics.json").write_text("{}")
    with pytest.raises(KzooError, match="already holds a finished run"):
        rundir.prepare(cfg)
    assert (tmp_path / "run" / "metrics.json").read_text() == "{}"  # nothing lost
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(KzooError, match="not a kzoo run directory"):
        rundir.prepare(TrainConfig(out=str(other)))


def test_resume_with_other_settings_is_refused(tmp_path):
    out = str(tmp_path / "run")
    rundir.prepare(TrainConfig(out=out, lr=1e-3))
    (tmp_path / "run" / "history.csv").write_text("epoch,loss\n0,2.0\n")  # it trained an epoch
    with pytest.raises(KzooError, match=r"other settings \(lr\)"):
        rundir.prepare(TrainConfig(out=out, lr=1e-2))
    assert json.load(open(f"{out}/config.json"))["lr"] == 1e-3  # the original config is kept


def test_history_keeps_last_copy_of_repeated_epoch(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n0,2.0\n1,1.5\n1,1.4\n2,1.2\n")
    rows = rundir.read_history(str(tmp_path))
    assert [r["loss"] for r in rows] == [2.0, 1.4, 1.2]


def test_classification_report_counts():
    logits = np.array([[3, 1, 0], [0, 2, 1], [0, 1, 2], [2, 0, 1]], dtype=np.float32)
    labels = np.array([0, 1, 1, 2])
    r = classification_report(logits, labels, ["a", "b", "c"])
    assert r["top1"] == pytest.approx(0.5)
    assert r["confusion"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert r["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": 0.0}
    with pytest.raises(KzooError, match="predicts 3 classes but the data has 2"):
        classification_report(logits, labels, ["a", "b"])
