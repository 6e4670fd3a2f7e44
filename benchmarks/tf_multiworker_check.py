"""Does TensorFlow's MultiWorkerMirroredStrategy work with Keras 3's `model.fit`? (issue 32)

Starts two TensorFlow workers on 127.0.0.1 (TF_CONFIG), builds and compiles a small Conv2D model in
`strategy.scope()` and fits one epoch on a batched `tf.data.Dataset`, as TensorFlow's multi-worker
Keras tutorial does. Prints, per worker, "fit ok" with the loss, or the error's type and its last
line. On TensorFlow 2.21.0 + Keras 3.15.1 (2026-12-02) both workers fail with "Attempt to convert a
value (PerReplica:...) with an unsupported type ... to a Tensor" (keras-team/keras#20585), which is
why kzoo's multi-process training runs under the JAX backend (docs/distributed.md).

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/tf_multiworker_check.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

WORKER = r"""
import json, os, sys
index, ports = int(sys.argv[1]), sys.argv[2].split(",")
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                      "task": {"type": "worker", "index": index}})
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras, numpy as np, tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
rng = np.random.default_rng(0)
x, y = rng.normal(size=(640, 8, 8, 3)).astype("float32"), rng.integers(0, 10, 640)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32, drop_remainder=True)
with strategy.scope():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10)])
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
try:
    loss = model.fit(data, epochs=1, verbose=0).history["loss"][-1]
    print(json.dumps({"worker": index, "ok": True, "loss": loss}))
except Exception as err:
    print(json.dumps({"worker": index, "ok": False, "error": type(err).__name__,
                      "message": str(err).strip().splitlines()[-1][-300:]}))
"""


def main() -> None:
    import keras
    import tensorflow as tf

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from kzoo.distributed.launcher import free_port

    ports = ",".join(str(free_port()) for _ in range(2))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), ports], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for i in range(2)]
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        lines = out.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {"ok": False, "error": f"exit status {proc.returncode}"}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
