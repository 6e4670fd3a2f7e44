"""The training features airbench's recipe needs: the triangle schedule, the BatchNorm-offset rate
multiplier, lookahead, and the whitening stem fitted by `kzoo.train`."""

import json

import keras
import numpy as np
import pytest

import kzoo
from kzoo.training import rundir
from kzoo.training.callbacks import Lookahead
from kzoo.training.config import TrainConfig
from kzoo.training.optimizers import make_optimizer, norm_offsets
from kzoo.training.schedules import WarmupSchedule, make_schedule

from training_helpers import toy_npz  # noqa: F401  (a fixture)

pytestmark = pytest.mark.backend_agnostic


def test_triangle_schedule_is_airbench_s():
    s = make_schedule("triangle", 2.0, epochs=10, steps_per_epoch=10)
    rate = lambda t: float(np.asarray(s(t)))  # noqa: E731
    assert rate(0) == pytest.approx(0.4)  # 0.2 * peak
    assert rate(23) == pytest.approx(2.0)  # the peak at 23% of the steps
    assert rate(11.5) == pytest.approx(1.2)  # linear on the way up
    assert rate(100) == pytest.approx(0.14) and rate(150) == pytest.approx(0.14)  # 0.07 * peak, then flat
    assert rate(61.5) == pytest.approx((2.0 + 0.14) / 2, rel=1e-4)  # linear on the way down
    assert rate(100) == float(np.asarray(WarmupSchedule(**s.get_config())(100)))


def test_airbench94_trains_in_float32_unless_a_flag_says_otherwise():
    from kzoo.training.recipes import expand_recipe

    assert TrainConfig(**expand_recipe("airbench94", {})).validate().mixed_precision is None
    cfg = TrainConfig(**expand_recipe("airbench94", {"mixed_precision": "bfloat16"})).validate()
    assert cfg.mixed_precision == "bfloat16"


def test_a_flag_can_undo_a_recipes_mixed_precision(monkeypatch):
    from kzoo.training import recipes

    recipe = recipes.Recipe("mixed", dict(recipes.RECIPES["airbench94"].config, mixed_precision="bfloat16"))
    monkeypatch.setitem(recipes.RECIPES, "mixed", recipe)
    assert TrainConfig(**recipes.expand_recipe("mixed", {})).validate().mixed_precision == "bfloat16"
    cfg = TrainConfig(**recipes.expand_recipe("mixed", {"mixed_precision": "float32"})).validate()
    assert cfg.mixed_precision is None


def test_norm_bias_lr_multiplies_only_the_norm_offsets_step():
    model = kzoo.create_model("airbench94", num_classes=3, widths=(8, 8))
    offsets = set(norm_offsets(model))
    assert offsets == {f"stage{k}_bn{j}/beta" for k in (1, 2) for j in (1, 2)}
    grads = [keras.ops.ones(v.shape) for v in model.trainable_variables]
    cfg = TrainConfig(optimizer="sgd", momentum=0.0, weight_decay=0.0, norm_bias_lr=64.0)
    opt = make_optimizer(cfg, 0.01, model)
    before = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    opt.apply(grads, model.trainable_variables)
    for v in model.trainable_variables:
        step = keras.ops.convert_to_numpy(v) - before[v.path]
        expected = -0.01 * (64.0 if v.path in offsets else 1.0)
        np.testing.assert_allclose(step, expected, rtol=1e-3, err_msg=v.path)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert clone.lr_scales == opt.lr_scales


def _constant_gradient_model():
    """Output = bias on zero input, loss = mean(output): each SGD step (lr 1) lowers the bias by 1."""
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="zeros", name="d")(inputs))
    model.compile(keras.optimizers.SGD(1.0), loss=lambda y, p: keras.ops.mean(p))
    return model


@pytest.mark.parametrize("steps", [4, 3])
def test_lookahead_pulls_the_weights_toward_a_slow_copy(steps):
    model = _constant_gradient_model()
    x = np.zeros((steps, 1), "float32")
    # base ** every = 0.5 with power 0: every 2 steps slow = 0.5 * slow + 0.5 * weights.
    lookahead = Lookahead(every=2, total_steps=steps, base=0.5 ** 0.5, power=0.0)
    model.fit(x, x, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[lookahead])
    bias = float(keras.ops.convert_to_numpy(model.get_layer("d").bias)[0])
    # After steps 1-2 the weights reach -2 and slow = -1; after steps 3-4, -3 then slow = -2.
    # With 3 steps the epoch's end resets the weights (-2) to the slow copy (-1).
    assert bias == pytest.approx({4: -2.0, 3: -1.0}[steps])


def test_lookahead_pull_grows_with_training_progress():
    model = _constant_gradient_model()
    x = np.zeros((4, 1), "float32")
    model.fit(x, x, batch_size=1, epochs=1, verbose=0, callbacks=[Lookahead(every=2, total_steps=4, power=50.0)])
    # rho = 0.95**2 * (step / 4)**50: ~0 at step 2 (slow = weights = -2), 0.9025 at step 4 (weights -4)
    bias = float(keras.ops.convert_to_numpy(model.get_layer("d").bias)[0])
    assert bias == pytest.approx(0.9025 * -2 + 0.0975 * -4, abs=1e-6)


def test_train_fits_the_whitening_stem_and_runs_the_recipe(toy_npz, tmp_path):
    out = str(tmp_path / "run")
    kzoo.train(recipe="airbench94", data=toy_npz, image_size=[16, 16], epochs=2, batch_size=16, val_split=0.25,
               out=out)
    model = keras.saving.load_model(rundir.run_file(out, "last"), safe_mode=True, compile=False)
    kernel = keras.ops.convert_to_numpy(model.get_layer("stem_whiten").kernel).reshape(12, 24)
    identity = np.concatenate([np.eye(12), -np.eye(12)], axis=1)
    assert np.abs(kernel - identity).max() > 0.5  # fitted, not the unadapted default
    config = json.load(open(rundir.run_file(out, "config")))
    assert config["lookahead"] == 5 and config["norm_bias_lr"] == 64.0 and config["schedule"] == "triangle"
