"""kzoo.training.host_memory: freed host memory is reused instead of page-faulted back in every step.

Measured in subprocesses (the setting is process-wide and must precede JAX's first computation)
by counting minor page faults, not by timing.
"""

import json
import sys

import pytest

from training_helpers import run_python

NUMPY_CYCLES = """
import json, resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from kzoo.training.host_memory import keep_freed_host_memory
    assert keep_freed_host_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = np.ones(50_000_000, np.float32); del block  # 200 MB, first touch
before = faults()
for _ in range(4):
    block = np.ones(50_000_000, np.float32); del block
print(json.dumps((faults() - before) / 4))
"""

# What `kzoo train` does under JAX: train() applies the setting first; then a ViT's training steps.
JAX_STEPS = """
import json, resource
import keras, numpy as np
import kzoo
from kzoo.training import host_memory
try:
    kzoo.train(model="no_such_model")  # fails on the name, after the memory setting
except kzoo.KzooError:
    pass
model = kzoo.create_model("vit_cifar_tiny", num_classes=10)
model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
x = np.random.default_rng(0).uniform(0, 255, (64, 32, 32, 3)).astype("float32")
y = np.eye(10, dtype="float32")[np.arange(64) % 10]
for _ in range(3):
    model.train_on_batch(x, y)
per_step = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model.train_on_batch(x, y)
    per_step.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
# The median: with the setting, a step now and then still grows the heap once (one step of
# ~60,000 faults seen under load); without it, every step faults the whole block back in.
print(json.dumps({"applied": host_memory._applied, "faults_per_step": float(np.median(per_step))}))
"""


def _run(code: str, *args: str, **env: str) -> str:
    """The snippet's last printed line (a JSON figure)."""
    proc = run_python(code, *args, env={"NUMPY_MADVISE_HUGEPAGE": "0", **env})
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_large_block_is_reused_without_page_faults():
    default = json.loads(_run(NUMPY_CYCLES, "default"))
    kept = json.loads(_run(NUMPY_CYCLES, "keep"))
    assert default > 40_000  # glibc unmaps the 200 MB block on free: every cycle faults it back in
    assert kept < default / 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_train_keeps_host_memory_under_jax_on_cpu():
    env = dict(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    off = json.loads(_run(JAX_STEPS, KZOO_KEEP_HOST_MEMORY="0", **env))
    on = json.loads(_run(JAX_STEPS, **env))
    assert (off["applied"], on["applied"]) == (False, True)
    if off["faults_per_step"] < 10_000:
        pytest.skip(f"this jaxlib no longer maps fresh scratch memory each step ({off['faults_per_step']:.0f} faults)")
    assert on["faults_per_step"] < off["faults_per_step"] / 10, (off, on)
