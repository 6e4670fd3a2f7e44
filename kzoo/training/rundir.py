"""The run directory: what a run writes, and the rules that keep earlier results safe.

A run directory holds config.json, class_names.json, history.csv, curves.png, metrics.json,
best.keras, last.keras, confusion.png, backup/ (BackupAndRestore state) and tensorboard/. Rules:
- a new directory (or an empty one) starts a run;
- a directory with config.json but no metrics.json is an interrupted run: it is resumed when
  the settings match (only --epochs may grow), refused otherwise; a run that failed or was
  stopped before it saved any training state (no history, backup or checkpoint) counts as never
  started: `kzoo.train` removes what it wrote, and a leftover config.json is replaced;
- a directory with metrics.json holds a finished run and is never overwritten;
- any other non-empty directory is refused.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil

from kzoo.errors import KzooError
from kzoo.training.config import TrainConfig, config_path

FILES = {
    "config": "config.json",
    "history": "history.csv",
    "curves": "curves.png",
    "metrics": "metrics.json",
    "best": "best.keras",
    "last": "last.keras",
    "backup": "backup",
    "tensorboard": "tensorboard",
    "confusion": "confusion.png",
    "class_names": "class_names.json",
    "encoder": "encoder.keras",  # kzoo pretrain: the backbone alone
    "classifier": "classifier.keras",  # kzoo train --method coop: the learned prompts folded into a fixed head
    "replicas": "replicas.json",  # how many replicas (devices of all processes) trained the run
}


def run_file(run_dir: str, key: str) -> str:
    return os.path.join(run_dir, FILES[key])


def prepare(cfg: TrainConfig) -> bool:
    """Create or validate `cfg.out`; return True when an interrupted run is being resumed."""
    out = cfg.out
    if os.path.isfile(out):
        raise KzooError(f"--out {out} is a file; give a directory for the run")
    if not os.path.isdir(out) or not os.listdir(out):
        os.makedirs(out, exist_ok=True)
        cfg.to_json(config_path(out))
        return False
    if os.path.exists(run_file(out, "metrics")):
        raise KzooError(f"--out {out} already holds a finished run; choose another --out (nothing was changed)")
    if not os.path.exists(config_path(out)):
        raise KzooError(f"--out {out} is not empty and is not a kzoo run directory; choose another --out")
    if not has_trained(out):  # stopped before training (killed while loading data): nothing to resume
        cfg.to_json(config_path(out))
        return False
    previous = type(cfg).from_json(config_path(out))
    changed = previous.differs_from(cfg)
    if changed:
        raise KzooError(
            f"--out {out} holds an interrupted run with other settings ({', '.join(changed)}); "
            "rerun with the same settings to resume, or choose another --out"
        )
    if cfg.epochs < previous.epochs:
        raise KzooError(f"--out {out}: cannot resume with fewer epochs ({cfg.epochs}) than before ({previous.epochs})")
    cfg.to_json(config_path(out))
    return True


# What a run writes once training has started; before that it has only config and class names.
TRAINING_STATE = ("history", "backup", "best", "last", "encoder", "metrics")
BEFORE_TRAINING = ("config", "class_names", "tensorboard", "replicas")


def record_replicas(run_dir: str, replicas: int, processes: int, resumed: bool) -> None:
    """Write how many replicas train the run; a resumed run must have as many (the global batch,
    the learning-rate scaling and the steps per epoch depend on it)."""
    path = run_file(run_dir, "replicas")
    if resumed and os.path.exists(path):
        with open(path) as f:
            before = json.load(f)
        if before["replicas"] != replicas:
            raise KzooError(f"--out {run_dir} was trained by {before['replicas']} replica(s) in {before['processes']} "
                            f"process(es), this run has {replicas} in {processes}: resume with the same processes and "
                            "devices (the global batch would change), or choose another --out")
    with open(path, "w") as f:
        json.dump({"replicas": replicas, "processes": processes}, f)


def has_trained(run_dir: str) -> bool:
    """Whether `run_dir` holds any training state (history, backup, checkpoint or metrics)."""
    return any(os.path.exists(run_file(run_dir, key)) for key in TRAINING_STATE)


def discard_untrained(run_dir: str) -> None:
    """Remove what a run wrote before training started, and the directory if that leaves it
    empty, so a failed start never blocks the corrected command. A run with training state is
    left untouched."""
    if has_trained(run_dir):
        return
    for key in BEFORE_TRAINING:
        path = run_file(run_dir, key)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)
    with contextlib.suppress(OSError):  # not empty: the person's own files stay, and so does the folder
        os.rmdir(run_dir)


def read_history(run_dir: str) -> list[dict[str, float]]:
    """history.csv as a list of rows, one per epoch; a row repeated by a resume keeps its last copy."""
    path = run_file(run_dir, "history")
    if not os.path.exists(path):
        return []
    rows: dict[int, dict[str, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            rows[int(row["epoch"])] = {k: float(v) for k, v in row.items() if v not in ("", None)}
    return [rows[e] for e in sorted(rows)]
