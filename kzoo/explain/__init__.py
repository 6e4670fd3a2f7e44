"""Explanations: Grad-CAM, Grad-CAM++ and CAM heatmaps, overlays, a per-epoch heatmap callback.

Example:
    >>> import kzoo
    >>> model = kzoo.create_model("vgg11_bn_cam_cifar", num_classes=10)  # doctest: +SKIP
    >>> kzoo.explain.grad_cam(model, images).shape  # doctest: +SKIP
    (8, 32, 32)
"""

from kzoo.explain.cam import (
    CAM,
    CAM_METHODS,
    METHODS,
    BaseCAM,
    CAMResult,
    GradCAM,
    GradCAMPlusPlus,
    explain,
    find_target_layer,
    grad_cam,
    spatial_layers,
)
from kzoo.explain.callback import HeatmapCallback
from kzoo.explain.overlay import heatmap_grid, overlay

__all__ = [
    "CAM",
    "CAM_METHODS",
    "METHODS",
    "BaseCAM",
    "CAMResult",
    "GradCAM",
    "GradCAMPlusPlus",
    "HeatmapCallback",
    "explain",
    "find_target_layer",
    "grad_cam",
    "heatmap_grid",
    "overlay",
    "spatial_layers",
]
