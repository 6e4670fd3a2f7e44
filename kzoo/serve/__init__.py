"""`kzoo serve`: a local prediction page and JSON API for a checkpoint (the `kzoo[serve]` extra).

Example:
    >>> from kzoo.serve import Predictor, create_app  # doctest: +SKIP
    >>> app = create_app(Predictor("runs/r18/best.keras"))  # doctest: +SKIP
"""

from kzoo._lazy import lazy_getattr

_EXPORTS = {"Predictor": "kzoo.serve.predictor", "create_app": "kzoo.serve.app", "MicroBatcher": "kzoo.serve.batching"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
