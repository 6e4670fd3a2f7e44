import os
import subprocess
import sys

import keras
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_npz(path, n=96, size=16, classes=3, seed=0):
    """A learnable toy set: the class decides which colour channel is bright."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 90, (n, size, size, 3)).astype(np.uint8)
    x[np.arange(n), :, :, y % 3] += 150  # with more than 3 classes only the label count matters
    np.savez(path, x=x, y=y)
    return str(path)


@pytest.fixture
def toy_npz(tmp_path):
    return make_npz(tmp_path / "toy.npz")


def run_python(code, *args, env=None, timeout=300):
    """Run a Python snippet in a fresh process (process-wide settings, its own JAX start); must succeed."""
    full_env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def run_kzoo(*args, env=None, timeout=600, check=False):
    """Run the real `kzoo` CLI in a fresh process (its own backend, devices and exit status)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "kzoo.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"kzoo {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


class Crash(Exception):
    pass


class CrashAt(keras.callbacks.Callback):
    """Raises after a given training step of the first epoch, as a killed process would stop."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.step:
            raise Crash()
