"""Robustness to common corruptions (Hendrycks & Dietterich 2019): `evaluate_robustness` runs a
checkpoint over every corruption x severity of a data split, corrupted on the fly, and reports
mean corruption accuracy, CE, mCE and relative mCE against a baseline (`kzoo robustness`).

Example:
    >>> from kzoo.robustness import evaluate_robustness
    >>> report = evaluate_robustness("runs/r18/best.keras", "cifar10.tar.gz")  # doctest: +SKIP
"""

from kzoo._lazy import lazy_getattr

__getattr__ = lazy_getattr(__name__, {
    "evaluate_robustness": "kzoo.robustness.evaluate",
    "corruption_errors": "kzoo.robustness.metrics",
    "mean_accuracy": "kzoo.robustness.metrics",
    "summary": "kzoo.robustness.metrics",
})

__all__ = ["corruption_errors", "evaluate_robustness", "mean_accuracy", "summary"]
