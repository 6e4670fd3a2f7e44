"""Self-supervised pretraining (SimCLR) and its evaluation: the kNN monitor and the linear probe.

Example:
    >>> from kzoo.selfsup import pretrain, linear_probe
    >>> run = pretrain(model="resnet18_cifar", data="cifar10-jpg.tar.gz", epochs=100, out="runs/simclr")  # doctest: +SKIP
    >>> linear_probe("runs/simclr/encoder.keras", "cifar10-jpg.tar.gz")["top1"]  # doctest: +SKIP
"""

from kzoo._lazy import lazy_getattr

# Every name below is imported on first use: importing kzoo.selfsup does not start Keras.
# One entry per module; add a module's names as one more line (and to __all__).
_EXPORTS = {
    **dict.fromkeys(["KNNMonitor", "knn_accuracy", "knn_predict"], "kzoo.selfsup.knn"),
    **dict.fromkeys(["linear_probe"], "kzoo.selfsup.probe"),
    **dict.fromkeys(["SimCLR", "projection_head"], "kzoo.selfsup.simclr"),
    **dict.fromkeys(["pretrain"], "kzoo.selfsup.pretraining"),
    **dict.fromkeys(["METHODS", "PretrainConfig"], "kzoo.selfsup.config"),
}
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = ["KNNMonitor", "METHODS", "PretrainConfig", "SimCLR", "knn_accuracy", "knn_predict", "linear_probe",
           "pretrain", "projection_head"]
