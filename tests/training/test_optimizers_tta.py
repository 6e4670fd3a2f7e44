"""Optimizer options (LAMB/Lion, clipping, EMA, layer-wise lr decay), one-cycle and TTA views.

No tf.data here: these run under TensorFlow and JAX.
"""

import keras
import numpy as np
import pytest

import kzoo
from kzoo.errors import KzooError
from kzoo.training.config import TrainConfig
from kzoo.training.optimizers import layer_scales, make_optimizer
from kzoo.training.schedules import WarmupSchedule, make_schedule
from kzoo.training.tta import parse_tta, shift_pixels, tta_views, tta_weights

pytestmark = pytest.mark.backend_agnostic


def _vit():
    return kzoo.create_model("vit_cifar_tiny", num_classes=3, input_shape=(16, 16, 3))


def _one_step(cfg, model, grads):
    opt = make_optimizer(cfg, 0.01, model)
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    opt.apply(grads, model.trainable_variables)
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    return {v.path: a - b for v, a, b in zip(model.trainable_variables, after, before)}


def test_layer_scales_follow_the_block_index():
    scales = layer_scales(_vit(), 0.5)
    assert scales["head/kernel"] == scales["norm/gamma"] == 1.0
    assert scales["block_3_attn/qkv/kernel"] == 0.5 and scales["block_0_norm1/gamma"] == 0.5 ** 4
    assert scales["patch_embed/kernel"] == scales["pos_embed/embedding"] == scales["cls_token/token"] == 0.5 ** 5
    with pytest.raises(KzooError, match="needs a transformer with block_N layers"):
        layer_scales(kzoo.create_model("resnet18_cifar", num_classes=3), 0.5)


@pytest.mark.parametrize("optimizer", ["adamw", "lamb", "lion", "sgd"])
def test_layer_decay_scales_each_variables_step(optimizer):
    model = _vit()
    start = model.get_weights()  # LAMB's trust ratio depends on the weights: both steps start alike
    grads = [keras.ops.ones(v.shape) for v in model.trainable_variables]
    plain = _one_step(TrainConfig(optimizer=optimizer, weight_decay=0.0), model, grads)
    model.set_weights(start)
    decayed = _one_step(TrainConfig(optimizer=optimizer, weight_decay=0.0, layer_decay=0.5), model, grads)
    for path, scale in layer_scales(model, 0.5).items():
        np.testing.assert_allclose(decayed[path], scale * plain[path], rtol=1e-3, atol=1e-8, err_msg=path)  # float32 ulp of the weights
    assert np.abs(plain["block_0_attn/qkv/kernel"]).max() > 0


def test_layer_decay_scales_weight_decay_and_keeps_the_no_decay_group():
    model = _vit()
    grads = [keras.ops.zeros(v.shape) for v in model.trainable_variables]  # AdamW moves only by decay
    weights = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    step = _one_step(TrainConfig(optimizer="adamw", weight_decay=0.1, layer_decay=0.5), model, grads)
    np.testing.assert_allclose(step["head/kernel"], -0.01 * 0.1 * weights["head/kernel"], rtol=1e-3, atol=1e-8)  # float32 ulp of the weights
    np.testing.assert_allclose(step["block_1_mlp_fc1/kernel"], -0.01 * 0.1 * 0.5 ** 3 * weights["block_1_mlp_fc1/kernel"],
                               rtol=1e-3, atol=1e-8)
    for path in ("pos_embed/embedding", "cls_token/token", "head/bias", "block_0_norm1/gamma"):
        assert not np.any(step[path]), path


def test_layer_decayed_optimizer_round_trips_through_its_config():
    model = _vit()
    opt = make_optimizer(TrainConfig(optimizer="adamw", layer_decay=0.7, ema=0.99), 0.01, model)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone).__name__ == "LayerDecayAdamW" and clone.lr_scales == opt.lr_scales and clone.use_ema


def test_clip_norm_bounds_the_update():
    model = _vit()
    grads = [keras.ops.ones(v.shape) * 100.0 for v in model.trainable_variables]
    step = _one_step(TrainConfig(optimizer="sgd", momentum=0.0, weight_decay=0.0, clip_norm=1.0), model, grads)
    norm = np.sqrt(sum(float(np.sum(d ** 2)) for d in step.values()))
    assert norm == pytest.approx(0.01 * 1.0, rel=1e-3)  # lr x clipped global norm


def test_one_cycle_rises_then_anneals():
    s = make_schedule("onecycle", 1.0, epochs=10, steps_per_epoch=10)
    rate = lambda t: float(np.asarray(s(t)))  # noqa: E731
    assert rate(0) == pytest.approx(1 / 25)
    assert rate(30) == pytest.approx(1.0)  # 30% of the steps
    assert rate(15) < rate(29) < rate(30)
    assert rate(65) == pytest.approx(0.5, abs=0.01) and rate(100) == pytest.approx(1 / 25 / 1e4, rel=1e-3)
    assert rate(100) == float(np.asarray(WarmupSchedule(**s.get_config())(100)))


def test_tta_views_are_mirrors_and_reflected_shifts():
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    views = tta_views(images, ["flip", "translate"])
    assert len(views) == 6 and all(v.shape == images.shape for v in views)
    np.testing.assert_array_equal(views[1], images[:, :, ::-1])
    s = shift_pixels(32)
    assert s == 1 and shift_pixels(64) == 2
    np.testing.assert_array_equal(views[2][:, s:, s:], images[:, :-s, :-s])  # moved down-right
    np.testing.assert_array_equal(views[3][:, :-s, :-s], images[:, s:, s:])  # moved up-left
    np.testing.assert_array_equal(views[2][:, 0, s:], images[:, s, :-s])  # the border is reflected, not black
    # airbench's weighting: unshifted views one half, shifted views the other half
    np.testing.assert_allclose(tta_weights(["flip", "translate"]), [0.25, 0.25, 0.125, 0.125, 0.125, 0.125])
    np.testing.assert_allclose(tta_weights(["translate"]), [0.5, 0.25, 0.25])
    np.testing.assert_allclose(tta_weights(["flip"]), [0.5, 0.5])
    assert parse_tta("translate,flip") == ["flip", "translate"] and parse_tta("none") == []
    with pytest.raises(KzooError, match="--tta 'rotate' is not supported"):
        parse_tta("flip,rotate")
