"""kzoo.training.distribute: KZOO_CPU_DEVICES splits the CPU under JAX, and says so when too late.

Training data-parallel on the split CPU is covered end to end by
test_train_e2e.py::test_distribute_on_two_cpu_devices.
"""

import json

import pytest

from kzoo.errors import KzooError
from kzoo.training import distribute
from training_helpers import run_python

SPLIT_THEN_TOO_LATE = """
import json, logging, os
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from kzoo.training import distribute
distribute.split_cpu_for_jax()  # KZOO_CPU_DEVICES=2, before JAX starts
import jax
first = len(jax.devices("cpu"))
os.environ["KZOO_CPU_DEVICES"] = "3"
distribute.split_cpu_for_jax()  # JAX is running: must warn, not change anything
print(json.dumps({"first": first, "after": len(jax.devices("cpu"))}))
"""


def test_cpu_device_count_refuses_a_non_number_in_one_line(monkeypatch):
    monkeypatch.setenv("KZOO_CPU_DEVICES", "two")
    with pytest.raises(KzooError, match=r"KZOO_CPU_DEVICES='two': expected a whole number"):
        distribute.cpu_device_count()
    monkeypatch.setenv("KZOO_CPU_DEVICES", "")
    assert distribute.cpu_device_count() == 0


def test_jax_gets_the_devices_before_it_starts_and_a_warning_after():
    # XLA_FLAGS emptied: the Makefile's flags must not decide the device count.
    env = {"KERAS_BACKEND": "jax", "KZOO_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    proc = run_python(SPLIT_THEN_TOO_LATE, env=env)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"first": 2, "after": 2}
    assert "KZOO_CPU_DEVICES=3 ignored: JAX had already started with 2 CPU device(s)" in proc.stderr
