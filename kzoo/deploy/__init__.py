"""Deployment: `kzoo.export` (SavedModel, ONNX, LiteRT; every export verified against the model)
and running or evaluating an exported file with its own runtime.

Example:
    >>> report = kzoo.export("runs/r18/best.keras", format="onnx")  # doctest: +SKIP
    >>> load_exported(report["path"]).predict_on_batch(images)  # doctest: +SKIP
"""

from kzoo._lazy import lazy_getattr

_EXPORTS = {
    "export": "kzoo.deploy.exporting",
    "FORMATS": "kzoo.deploy.exporting",
    "load_exported": "kzoo.deploy.runtimes",
    "ExportedModel": "kzoo.deploy.runtimes",
    "evaluate_exported": "kzoo.deploy.evaluation",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
