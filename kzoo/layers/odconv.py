"""Omni-dimensional dynamic convolution (ODConv; Li, Zhou, Yao, ICLR 2022).

An ODConv layer holds `kernel_num` convolution kernels and, per sample, four attentions computed
from one squeeze-excite style branch (global average pool -> FC(hidden, no bias) -> BN -> ReLU):

- spatial: sigmoid over the k x k kernel positions (skipped for 1x1 kernels),
- input channel: sigmoid over the input channels,
- output filter: sigmoid over the filters (skipped for depth-wise convolutions),
- kernel: softmax over the `kernel_num` kernels (skipped when `kernel_num == 1`).

Each sample is convolved with its own kernel
`sum_i kernel_att[i] * spatial_att * W_i`, with the channel attention applied to the input and
the filter attention to the output (equivalent to applying them to the kernel, and cheaper).
All attention logits are divided by a temperature (annealed from ~30 to 1 early in training in
the paper; see `ODConvTemperatureScheduler`).

How the per-sample convolution is batched (no Python loop over samples):
the input is unfolded into k*k shifted windows (im2col, built with `split`/`reshape`, whose
gradients are concatenations; strided-slice gradients are several times slower on TensorFlow
CPU) and multiplied with
- `kernel_num == 1`: the one shared kernel, after scaling each window by its spatial attention
  (one large GEMM, no per-sample kernel is materialised);
- `kernel_num > 1`: the per-sample aggregated kernels (a batched matmul).
A 1x1 ODConv with one kernel is a plain 1x1 convolution between the two attentions.
Folding the batch into the groups of one grouped convolution (what the PyTorch reference does)
was measured and rejected: XLA on CPU runs its gradient ~100x slower than a plain convolution.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from kzoo.errors import KzooError


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        raise KzooError(f"ODConv2D: {name} must be a positive int or a pair of them, got {value!r}")
    return value


def _window(x, axis: int, start: int, count: int, step: int):
    """Elements `start, start + step, ..., start + (count - 1) * step` of `x` along `axis`.

    Built from `split` and `reshape` when the axis length is static (cheap gradients on every
    backend), from slicing otherwise.
    """
    length = x.shape[axis]
    if length is None or not isinstance(count, int):
        index = [slice(None)] * len(x.shape)
        index[axis] = slice(start, start + (count - 1) * step + 1, step)
        return x[tuple(index)]
    stop = start + count * step
    if stop > length:  # the last window may reach past the end by step - 1: pad, never read
        pad = [(0, 0)] * len(x.shape)
        pad[axis] = (0, stop - length)
        x = ops.pad(x, pad)
        length = stop
    cuts = [c for c in (start, stop) if 0 < c < length]
    if cuts:
        parts = ops.split(x, cuts, axis=axis)
        x = parts[1] if start > 0 else parts[0]
    if step > 1:
        shape = [-1 if d is None else d for d in x.shape]
        shape[axis : axis + 1] = [count, step]
        x = ops.split(ops.reshape(x, shape), [1], axis=axis + 1)[0]
        x = ops.squeeze(x, axis=axis + 1)
    return x


@keras.saving.register_keras_serializable(package="kzoo")
class FanOutNormal(keras.initializers.Initializer):
    """PyTorch's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: normal with
    std `sqrt(scale / fan_out)`, `fan_out = prod(shape[skip_leading:-2]) * shape[-1]`
    (a Dense `(in, out)` kernel: `out`; a conv `(kh, kw, in, out)`: `kh*kw*out`), or a fixed
    `stddev` when given.

    Values are drawn on the host with NumPy (seeded by `keras.utils.set_random_seed`, or by
    `seed`): under JAX every distinct shape drawn with `keras.random` costs an XLA compilation,
    which made building an OD-ResNet take tens of seconds.

    Example:
        >>> FanOutNormal()((3, 3, 4, 8)).shape
        (3, 3, 4, 8)
    """

    def __init__(
        self, scale: float = 2.0, skip_leading: int = 0, stddev: float | None = None, seed: int | None = None
    ):
        self.scale = float(scale)
        self.skip_leading = int(skip_leading)
        self.stddev = None if stddev is None else float(stddev)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        shape = tuple(int(d) for d in shape)
        if self.stddev is not None:
            std = self.stddev
        else:
            core = shape[self.skip_leading :]
            if len(core) >= 2:
                fan_out = int(np.prod(core[:-2], dtype="int64")) * core[-1]
            else:
                fan_out = int(np.prod(core, dtype="int64"))
            std = math.sqrt(self.scale / max(fan_out, 1))
        rng = np.random if self.seed is None else np.random.default_rng(self.seed)
        values = rng.standard_normal(shape).astype("float32") * np.float32(std)
        return ops.cast(ops.convert_to_tensor(values), dtype or "float32")

    def get_config(self):
        return {"scale": self.scale, "skip_leading": self.skip_leading, "stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kzoo")
class ODConv2D(keras.layers.Layer):
    """Omni-dimensional dynamic 2D convolution, channels-last, no bias by default.

    Args:
        filters: number of output channels.
        kernel_size: int or (kh, kw).
        strides: int or pair.
        padding: "same" (TensorFlow's rule), "valid", an int, or a pair (ph, pw) of symmetric
            zero paddings (PyTorch's rule: `padding=1` with a 3x3 kernel). Padding is applied
            after the attention branch, so its global average pool sees the unpadded input
            (as in the reference implementation).
        dilation_rate: int or pair.
        groups: grouped convolution; `filters` and the input channels must divide by it.
        kernel_num: number of kernels mixed by the kernel attention (1 or 4 in the paper).
        reduction: hidden width of the attention branch is
            `max(int(in_channels * reduction), min_hidden)`.
        min_hidden: lower bound of that width (16 in the paper).
        temperature: initial temperature of every attention (a non-trainable variable, so a
            callback can anneal it without recompiling).
        use_bias: add a bias after the filter attention (ODConv has none: BN follows it).

    Example:
        >>> layer = ODConv2D(8, 3, kernel_num=4)
        >>> layer(keras.ops.ones((2, 16, 16, 4))).shape
        (2, 16, 16, 8)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: Any = "same",
        dilation_rate: Any = 1,
        groups: int = 1,
        kernel_num: int = 4,
        reduction: float = 0.0625,
        min_hidden: int = 16,
        temperature: float = 1.0,
        use_bias: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        positive = (("filters", filters), ("groups", groups), ("kernel_num", kernel_num), ("min_hidden", min_hidden))
        for name, value in positive:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise KzooError(f"ODConv2D: {name} must be a positive int, got {value!r}")
        if not reduction > 0:
            raise KzooError(f"ODConv2D: reduction must be > 0, got {reduction!r}")
        if not temperature > 0:
            raise KzooError(f"ODConv2D: temperature must be > 0, got {temperature!r}")
        if filters % groups:
            raise KzooError(f"ODConv2D: filters={filters} is not divisible by groups={groups}")
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if isinstance(padding, str):
            if padding.lower() not in ("same", "valid"):
                raise KzooError(f"ODConv2D: padding must be 'same', 'valid', an int or a pair, got {padding!r}")
            self.padding = padding.lower()
        else:
            if isinstance(padding, int) and not isinstance(padding, bool):
                padding = (padding, padding)
            padding = tuple(padding)
            if len(padding) != 2 or not all(isinstance(p, int) and p >= 0 for p in padding):
                raise KzooError(f"ODConv2D: padding must be 'same', 'valid', an int or a pair, got {padding!r}")
            self.padding = padding
        self.groups = groups
        self.kernel_num = kernel_num
        self.reduction = float(reduction)
        self.min_hidden = min_hidden
        self.initial_temperature = float(temperature)
        self.use_bias = use_bias

    # ----------------------------------------------------------------------------------- build
    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise KzooError("ODConv2D: the number of input channels must be known when the layer is built")
        if in_channels % self.groups:
            raise KzooError(f"ODConv2D: input channels {in_channels} are not divisible by groups={self.groups}")
        self.in_channels = in_channels
        kh, kw = self.kernel_size
        self.hidden = max(int(in_channels * self.reduction), self.min_hidden)
        self.depthwise = in_channels == self.groups and in_channels == self.filters
        policy = self.dtype_policy
        # kaiming_normal(fan_out) everywhere, as in the reference (the kernel: per kernel_num slice).
        dense = dict(kernel_initializer=FanOutNormal(), bias_initializer="zeros", dtype=policy)
        self.fc = keras.layers.Dense(self.hidden, use_bias=False, name="fc", **dense)
        self.bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn", dtype=policy)
        self.channel_fc = keras.layers.Dense(in_channels, name="channel_fc", **dense)
        # the reference skips: filter attention for depth-wise, spatial for 1x1, kernel for one kernel
        Dense = keras.layers.Dense
        self.filter_fc = None if self.depthwise else Dense(self.filters, name="filter_fc", **dense)
        self.spatial_fc = None if kh * kw == 1 else Dense(kh * kw, name="spatial_fc", **dense)
        self.kernel_fc = None if self.kernel_num == 1 else Dense(self.kernel_num, name="kernel_fc", **dense)
        self.fc.build((None, in_channels))
        self.bn.build((None, self.hidden))
        for head in (self.channel_fc, self.filter_fc, self.spatial_fc, self.kernel_fc):
            if head is not None:
                head.build((None, self.hidden))
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_num, kh, kw, in_channels // self.groups, self.filters),
            initializer=FanOutNormal(skip_leading=1),
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None
        self.temperature = self.add_weight(
            name="temperature",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_temperature),
            trainable=False,
            autocast=False,
        )

    # ------------------------------------------------------------------------------- attention
    def attention(self, inputs, training=None):
        """The four attentions `(channel (B, C), filter (B, O) | None, spatial (B, kh*kw) | None,
        kernel (B, kernel_num) | None)`; `None` marks an attention the layer skips."""
        t = ops.cast(self.temperature, self.compute_dtype)
        h = ops.mean(inputs, axis=(1, 2))
        h = ops.relu(self.bn(self.fc(h), training=training))
        channel = ops.sigmoid(self.channel_fc(h) / t)
        filt = None if self.filter_fc is None else ops.sigmoid(self.filter_fc(h) / t)
        spatial = None if self.spatial_fc is None else ops.sigmoid(self.spatial_fc(h) / t)
        kernel = None if self.kernel_fc is None else ops.softmax(self.kernel_fc(h) / t, axis=-1)
        return channel, filt, spatial, kernel

    def _pads(self, height, width, strict=True):
        if isinstance(self.padding, tuple):
            (ph, pw) = self.padding
            return (ph, ph), (pw, pw)
        if self.padding == "valid":
            return (0, 0), (0, 0)
        pads = []
        for size, k, s, d in zip((height, width), self.kernel_size, self.strides, self.dilation_rate):
            effective = (k - 1) * d + 1
            if size is None:
                if strict and s > 1:
                    raise KzooError(
                        f"ODConv2D {self.name!r}: padding='same' with strides > 1 needs a static input height "
                        "and width; build the model with a fixed input_shape or use an integer padding"
                    )
                total = max(effective - s, 0)  # stride 1: independent of the size
            else:
                total = max((math.ceil(size / s) - 1) * s + effective - size, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)

    def _out_size(self, size, k, s, d, pad):
        if size is None:
            return None
        return (size + pad[0] + pad[1] - (k - 1) * d - 1) // s + 1

    def compute_output_shape(self, input_shape):
        pad_h, pad_w = self._pads(input_shape[1], input_shape[2], strict=False)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        return (
            input_shape[0],
            self._out_size(input_shape[1], kh, sh, dh, pad_h),
            self._out_size(input_shape[2], kw, sw, dw, pad_w),
            self.filters,
        )

    # ---------------------------------------------------------------------------------- call
    def call(self, inputs, training=None):
        channel, filt, spatial, kernel_att = self.attention(inputs, training=training)
        x = inputs * channel[:, None, None, :]
        kh, kw = self.kernel_size
        if kh * kw == 1 and self.kernel_num == 1 and self.groups == 1:
            y = self._pointwise(x)
        else:
            y = self._dynamic(x, spatial, kernel_att)
        if filt is not None:
            y = y * filt[:, None, None, :]
        if self.bias is not None:
            y = y + self.bias
        return y

    def _pointwise(self, x):
        """1x1 kernel, one kernel, no groups: a plain 1x1 convolution (the reference's fast path).

        Grouped 1x1 convolutions take the einsum path instead: `ops.conv`'s grouped
        convolution needs XLA on TensorFlow CPU and its gradient is slow there."""
        pad_h, pad_w = self._pads(x.shape[1], x.shape[2])
        if any(pad_h + pad_w):
            x = ops.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
        return ops.conv(x, self.kernel[0], strides=self.strides, padding="valid")

    def _dynamic(self, x, spatial, kernel_att):
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        pad_h, pad_w = self._pads(x.shape[1], x.shape[2])
        if any(pad_h + pad_w):
            x = ops.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            dyn = ops.shape(x)
            height = dyn[1] if height is None else height
            width = dyn[2] if width is None else width
        out_h = (height - (kh - 1) * dh - 1) // sh + 1
        out_w = (width - (kw - 1) * dw - 1) // sw + 1
        taps = kh * kw
        g, cg, og = self.groups, self.in_channels // self.groups, self.filters // self.groups
        kernel = self.kernel
        shared = self.kernel_num == 1
        windows = []
        for i in range(kh):
            rows = _window(x, 1, i * dh, out_h, sh)
            for j in range(kw):
                win = _window(rows, 2, j * dw, out_w, sw)
                if shared and spatial is not None:
                    win = win * spatial[:, i * kw + j][:, None, None, None]
                windows.append(win)
        patches = windows[0] if taps == 1 else ops.concatenate(windows, axis=-1)  # (B, H', W', taps*C)
        batch = ops.shape(patches)[0]
        if shared:
            w = kernel[0]  # (kh, kw, C/g, O)
            if g == 1:
                return ops.matmul(patches, ops.reshape(w, (taps * cg, self.filters)))
            patches = ops.reshape(patches, (batch, out_h, out_w, taps, g, cg))
            y = ops.einsum("bhwpgc,pcgo->bhwgo", patches, ops.reshape(w, (taps, cg, g, og)))
            return ops.reshape(y, (batch, out_h, out_w, self.filters))
        # per-sample kernels: sum_i kernel_att[b, i] * W_i, scaled by the spatial attention
        agg = ops.einsum("bn,nx->bx", kernel_att, ops.reshape(kernel, (self.kernel_num, -1)))
        agg = ops.reshape(agg, (batch, taps, cg * self.filters))
        if spatial is not None:
            agg = agg * spatial[:, :, None]
        if g == 1:
            patches = ops.reshape(patches, (batch, -1, taps * cg))
            y = ops.matmul(patches, ops.reshape(agg, (batch, taps * cg, self.filters)))
            return ops.reshape(y, (batch, out_h, out_w, self.filters))
        patches = ops.reshape(patches, (batch, -1, taps, g, cg))
        agg = ops.reshape(agg, (batch, taps, cg, g, og))
        y = ops.einsum("bnpgc,bpcgo->bngo", patches, agg)
        return ops.reshape(y, (batch, out_h, out_w, self.filters))

    # --------------------------------------------------------------------------- temperature
    def set_temperature(self, value: float) -> None:
        """Set the attention temperature (eagerly; for use between steps, e.g. from a callback)."""
        self.temperature.assign(float(value))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "kernel_num": self.kernel_num,
            "reduction": self.reduction,
            "min_hidden": self.min_hidden,
            "temperature": self.initial_temperature,
            "use_bias": self.use_bias,
        }


def odconv_temperature(
    iteration: int, epoch: int, steps_per_epoch: int, anneal_epochs: float = 10, initial: float = 30.0
) -> float:
    """The reference schedule: linear from `initial` to 1 over `anneal_epochs` epochs, then 1.

    `iteration` counts from 1 within `epoch` (counted from 0).

    Example:
        >>> odconv_temperature(0, 0, 100, anneal_epochs=10, initial=31.0)
        31.0
        >>> odconv_temperature(0, 10, 100, anneal_epochs=10, initial=31.0)
        1.0
    """
    total = steps_per_epoch * anneal_epochs
    if total <= 0:
        return 1.0
    current = iteration + epoch * steps_per_epoch
    return 1.0 + max(0.0, (initial - 1.0) * (total - current) / total)


def odconv_layers(model: keras.layers.Layer) -> list[ODConv2D]:
    """Every `ODConv2D` inside `model` (nested models and layers included)."""
    found = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, ODConv2D):
            found.append(layer)
    return found


def set_odconv_temperature(model: keras.layers.Layer, value: float) -> int:
    """Set the temperature of every ODConv2D in `model`; returns how many layers were set.

    Under JAX, call it outside `fit` or through `ODConvTemperatureScheduler` (which first syncs
    the trainer's state back into the variables).
    """
    layers = odconv_layers(model)
    for layer in layers:
        layer.set_temperature(value)
    return len(layers)


class ODConvTemperatureScheduler(keras.callbacks.Callback):
    """Anneals the temperature of every ODConv2D in the model: linearly from `initial` to 1 over
    the first `anneal_epochs` epochs, per step (the reference schedule; 30 -> 1 over 10 epochs on
    ImageNet), then keeps it at 1.

    Args:
        initial: starting temperature.
        anneal_epochs: epochs to reach 1 (may be fractional).
        update_every: update every this many steps (1 = the reference; larger values save the
            JAX state sync each update costs).

    Example:
        >>> cb = ODConvTemperatureScheduler(initial=30.0, anneal_epochs=10)
        >>> # model.fit(data, epochs=30, callbacks=[cb])
    """

    def __init__(self, initial: float = 30.0, anneal_epochs: float = 10, update_every: int = 1):
        super().__init__()
        if not initial >= 1:
            raise KzooError(f"ODConvTemperatureScheduler: initial must be >= 1, got {initial!r}")
        if not anneal_epochs >= 0:
            raise KzooError(f"ODConvTemperatureScheduler: anneal_epochs must be >= 0, got {anneal_epochs!r}")
        self.initial = float(initial)
        self.anneal_epochs = anneal_epochs
        self.update_every = max(int(update_every), 1)
        self._epoch = 0
        self._steps_seen = 0
        self._current = None
        self._layers: list[ODConv2D] = []

    def on_train_begin(self, logs=None):
        self._layers = odconv_layers(self.model)
        self._current = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _set(self, value: float) -> None:
        if self._current is not None and abs(self._current - value) < 1e-12:
            return
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:  # JAX trainer: pull the live state back before writing a variable
            sync()
        for layer in self._layers:
            layer.set_temperature(value)
        self._current = value

    def on_train_batch_begin(self, batch, logs=None):
        if not self._layers:
            return
        steps = (self.params or {}).get("steps") or self._steps_seen
        if self._epoch >= self.anneal_epochs:
            self._set(1.0)
        elif batch % self.update_every == 0:
            if steps:
                value = odconv_temperature(batch + 1, self._epoch, steps, self.anneal_epochs, self.initial)
            else:  # epoch length unknown until the first epoch ends: anneal per epoch meanwhile
                value = 1.0 + (self.initial - 1.0) * (self.anneal_epochs - self._epoch) / self.anneal_epochs
            self._set(value)
        if self._epoch == 0:
            self._steps_seen = max(self._steps_seen, batch + 1)

    @property
    def temperature(self) -> float | None:
        """The temperature last written (None before training starts)."""
        return self._current
