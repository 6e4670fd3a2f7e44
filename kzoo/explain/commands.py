"""What `kzoo predict` and `kzoo explain` do, as functions returning data (the CLI only prints).

Images are decoded with Pillow (no TensorFlow needed): any format Pillow reads (PNG, JPEG, BMP,
...), grayscale/palette/RGBA converted to the model's channels, resized to the model's input size
the way the model's config says (`ImageNormalization`'s interpolation and crop fraction: a plain
bilinear resize for kzoo-trained models, the checkpoint's own for pretrained ones).
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from kzoo.errors import KzooError


def load_image(path, size: tuple[int, int] | None = None, channels: int = 3, preprocessing=None,
               max_pixels: int | None = None, name: str | None = None) -> np.ndarray:
    """(H, W, channels) float32 pixels in [0, 255]; `size` = (height, width) to resize to, as
    `preprocessing` (a `kzoo.weights.Preprocessing`; None = plain bilinear resize) says.

    `path` is a file path or the image's bytes (`name` then labels it in errors); an image of more
    than `max_pixels` pixels is refused from its header, before it is decoded.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    from kzoo.weights.preprocessing import pil_resize

    label = name or (path if isinstance(path, str) else "upload")
    try:
        with Image.open(io.BytesIO(path) if isinstance(path, (bytes, bytearray)) else path) as img:
            if max_pixels is not None and img.size[0] * img.size[1] > max_pixels:
                raise KzooError(f"image {label} is {img.size[0]}x{img.size[1]} pixels; at most {max_pixels:,} "
                                "pixels are accepted")
            img.load()
            mode = "L" if channels == 1 else "RGB"
            if img.mode in ("RGBA", "LA", "P") and mode == "RGB":
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, img)
            img = img.convert(mode)
            if size is not None and None not in size:
                how = () if preprocessing is None else (
                    preprocessing.interpolation, preprocessing.crop_pct, preprocessing.crop_mode)
                img = pil_resize(img, (int(size[0]), int(size[1])), *how)
            arr = np.asarray(img, dtype="float32")
    except FileNotFoundError:
        raise KzooError(f"image not found: {label}") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise KzooError(f"cannot read image {label}: {reason}") from None
    return arr[..., None] if arr.ndim == 2 else arr


def load_images(paths: Sequence[str], model) -> np.ndarray:
    """Decode `paths` to one (N, H, W, C) batch the size `model` takes."""
    if not paths:
        raise KzooError("no images given: pass one or more image files")
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    size = tuple(shape[1:3])
    channels = shape[3] or 3
    if None in size:
        size = None
    from kzoo.weights.preprocessing import get_preprocessing

    pre = get_preprocessing(model)
    images = [load_image(p, size, channels, pre) for p in paths]
    if size is None and len({im.shape for im in images}) > 1:
        raise KzooError("the model takes any image size but the images differ in size; pass images of one size")
    return np.stack(images)


def read_class_names(checkpoint: str | None = None, class_names_file: str | None = None,
                     num_classes: int | None = None, fallback: bool = True) -> list[str] | None:
    """`--class-names FILE` (one per line), else `class_names.json` beside the checkpoint (a JSON
    list), else `class_names` in the run's config.json / metrics.json, else `class_0..` (or None
    with `fallback=False`)."""
    names = None
    if class_names_file is not None:
        try:
            with open(class_names_file, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except OSError as err:
            raise KzooError(f"cannot read class names {class_names_file}: {err.strerror or err}") from None
        source = class_names_file
    elif checkpoint is not None:
        run_dir = os.path.dirname(os.path.abspath(checkpoint))
        for file in ("class_names.json", "config.json", "metrics.json"):
            path = os.path.join(run_dir, file)
            if not os.path.exists(path):
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                data = data.get("class_names")
            if isinstance(data, list) and all(isinstance(n, str) for n in data) and data:
                names, source = data, path
                break
    if names is None:
        return [f"class_{i}" for i in range(num_classes or 0)] if fallback else None
    if num_classes is not None and len(names) != num_classes:
        raise KzooError(f"{source} lists {len(names)} class names but the model predicts {num_classes} classes")
    return names


def _logits(outputs) -> np.ndarray:
    from keras import ops

    from kzoo.training.evaluation import first_output

    return np.asarray(ops.convert_to_numpy(first_output(outputs)), "float32")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _num_classes(model) -> int:
    shape = model.output_shape
    if isinstance(shape, list):
        shape = shape[0]
    return int(shape[-1])


def predict_images(checkpoint: str, images: Sequence[str], top_k: int = 5,
                   class_names_file: str | None = None, batch_size: int = 32) -> list[dict[str, Any]]:
    """Top-k classes of each image: `[{"image", "predictions": [{"index", "name", "probability"}]}]`.

    Example:
        >>> predict_images("runs/demo/best.keras", ["cat.jpg"], top_k=3)  # doctest: +SKIP
    """
    from kzoo.training.api import load_checkpoint

    if not isinstance(top_k, int) or top_k < 1:
        raise KzooError(f"--top-k must be an int >= 1, got {top_k!r}")
    model = load_checkpoint(checkpoint)
    num_classes = _num_classes(model)
    names = read_class_names(checkpoint, class_names_file, num_classes)
    batch = load_images(images, model)
    probs = np.concatenate([_softmax(_logits(model(batch[i:i + batch_size], training=False)))
                            for i in range(0, len(batch), batch_size)])
    k = min(top_k, num_classes)
    results = []
    for path, p in zip(images, probs):
        order = np.argsort(-p)[:k]
        results.append({"image": path, "predictions": [
            {"index": int(i), "name": names[i], "probability": float(p[i])} for i in order]})
    return results


def explain_images(checkpoint: str, images: Sequence[str], out_dir: str, method: str = "gradcam",
                   layer: str | None = None, class_names_file: str | None = None,
                   alpha: float = 0.4, cmap: str = "jet") -> dict[str, Any]:
    """One PNG per image (`OUT/<stem>_<method>.png`: original | heatmap overlay) plus `OUT/grid.png`.

    Images and tiles are upsampled to at least 256 px on the short side (Lanczos for the image,
    bilinear for the heatmap), so a 32x32 model's explanation is readable; larger inputs keep
    their size. Returns `{"layer", "grid", "images": [{"image", "overlay", "index", "name",
    "probability"}]}`.

    Example:
        >>> explain_images("runs/demo/best.keras", ["cat.jpg"], "explain/")["images"][0]["overlay"]  # doctest: +SKIP
        'explain/cat_gradcam.png'
    """
    from PIL import Image

    from kzoo.explain.cam import explain
    from kzoo.explain.overlay import heatmap_grid, original_and_overlay
    from kzoo.training.api import load_checkpoint

    model = load_checkpoint(checkpoint)
    names = read_class_names(checkpoint, class_names_file, _num_classes(model))
    batch = load_images(images, model)
    result = explain(model, batch, layer=layer, method=method)
    probs = _softmax(result.logits)
    os.makedirs(out_dir, exist_ok=True)
    entries, used = [], set()
    for i, path in enumerate(images):
        stem = os.path.splitext(os.path.basename(path))[0] or f"image{i}"
        name = f"{stem}_{method}.png"
        if name in used:
            name = f"{stem}_{i}_{method}.png"
        used.add(name)
        out_path = os.path.join(out_dir, name)
        Image.fromarray(original_and_overlay(batch[i], result.heatmaps[i], alpha, cmap)).save(out_path)
        c = int(result.class_index[i])
        entries.append({"image": path, "overlay": out_path, "index": c, "name": names[c],
                        "probability": float(probs[i, c])})
    top = probs[np.arange(len(probs)), result.class_index]
    grid = heatmap_grid(batch, result.heatmaps, os.path.join(out_dir, "grid.png"),
                        predicted=result.class_index, probabilities=top,
                        class_names=names, alpha=alpha, cmap=cmap, title=f"{method} on {result.layer}")
    report = {"layer": result.layer, "grid": grid, "images": entries}
    local = local_branch_cam(model, batch)
    if local is not None:  # a CAM-guided fused model: also show where its local branch pooled
        for i, entry in enumerate(entries):
            entry["local_cam"] = entry["overlay"][: -len(f"_{method}.png")] + "_local_cam.png"
            Image.fromarray(original_and_overlay(batch[i], local[i], alpha, cmap)).save(entry["local_cam"])
        report["local_grid"] = heatmap_grid(
            batch, local, os.path.join(out_dir, "grid_local_cam.png"), predicted=result.class_index,
            probabilities=top, class_names=names, alpha=alpha, cmap=cmap,
            title="local branch CAM (where cam_pool pools)")
    return report


def local_branch_cam(model, images: np.ndarray) -> np.ndarray | None:
    """The CAM a fused model's local branch pools with (`(N, H, W)` in [0, 1]), or None without one.

    It is the second output of the model's `cam_pool` layer (`kzoo.layers.CAMGuidedPooling`),
    computed in the same forward pass as the logits whether or not the model exposes it.
    """
    import keras

    from kzoo.layers.fusion import CAMGuidedPooling

    layer = next((lay for lay in model.layers if isinstance(lay, CAMGuidedPooling)), None)
    if layer is None:
        return None
    probe = keras.Model(model.inputs, layer.output[1])
    return np.asarray(keras.ops.convert_to_numpy(probe(images, training=False)), "float32")
