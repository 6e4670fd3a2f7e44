"""The figures of the corruption benchmark (Hendrycks & Dietterich 2019) from accuracy tables.

With E(f, c, s) the error of model f on corruption c at severity s and E(f, clean) its clean error:
- corruption accuracy: the mean of 1 - E over corruptions and severities (RobustBench's figure);
- CE(f, c) = sum_s E(f, c, s) / sum_s E(base, c, s), and mCE its mean over corruptions;
- relative CE(f, c) = sum_s (E(f, c, s) - E(f, clean)) / sum_s (E(base, c, s) - E(base, clean)),
  and relative mCE its mean: how much accuracy a model loses to corruption, against the baseline.
The paper reports mCE and relative mCE in percent over the 15 benchmark corruptions; the held-out
four are reported apart. Pure numpy: nothing here runs a model.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from kzoo.augment.corruption_names import CORRUPTIONS, FAMILIES

Table = Mapping[str, Mapping[int, float]]  # corruption -> severity -> accuracy


def mean_accuracy(table: Table, names: tuple[str, ...] | None = None) -> float:
    """Mean accuracy over the corruptions `names` (default: all in `table`) and their severities.

    Example:
        >>> mean_accuracy({"fog": {1: 0.9, 2: 0.7}, "snow": {1: 0.8, 2: 0.6}})
        0.75
    """
    names = tuple(table) if names is None else names
    return float(np.mean([acc for name in names for acc in table[name].values()]))


def corruption_errors(table: Table, clean: float, base: Table, base_clean: float) -> dict[str, dict[str, float]]:
    """Per corruption: CE and relative CE (as fractions; x100 for the paper's percent).

    Example:
        >>> ce = corruption_errors({"fog": {1: 0.8, 2: 0.6}}, 0.9, {"fog": {1: 0.6, 2: 0.4}}, 0.9)
        >>> round(ce["fog"]["ce"], 3), round(ce["fog"]["relative_ce"], 3)
        (0.6, 0.3)
    """
    out = {}
    for name, by_severity in table.items():
        severities = sorted(by_severity)
        err = np.array([1 - by_severity[s] for s in severities])
        base_err = np.array([1 - base[name][s] for s in severities])
        relative_base = np.sum(base_err - (1 - base_clean))
        out[name] = {
            "ce": float(err.sum() / base_err.sum()) if base_err.sum() > 0 else float("nan"),
            # The baseline must lose accuracy to this corruption for a relative figure to exist.
            "relative_ce": float(np.sum(err - (1 - clean)) / relative_base) if relative_base > 0 else float("nan"),
        }
    return out


def summary(table: Table, clean: float, base: Table | None = None, base_clean: float | None = None) -> dict:
    """Mean corruption accuracy of the benchmark corruptions and of the held-out ones in `table`,
    per-family means, and with a baseline the mCE and relative mCE (fractions).

    Example:
        >>> summary({"fog": {1: 0.8}}, 0.9)["mean_corruption_accuracy"]
        0.8
    """
    benchmark = tuple(n for n in table if n in CORRUPTIONS)
    held_out = tuple(n for n in table if n not in CORRUPTIONS)
    result: dict = {
        "clean_accuracy": float(clean),
        "mean_corruption_accuracy": mean_accuracy(table, benchmark) if benchmark else None,
        "corruptions_in_mean": len(benchmark),
        "held_out_accuracy": mean_accuracy(table, held_out) if held_out else None,
        "family_accuracy": {family: mean_accuracy(table, tuple(n for n in names if n in table))
                            for family, names in FAMILIES.items() if any(n in table for n in names)},
    }
    if base is not None:
        errors = corruption_errors(table, clean, base, base_clean)
        result["corruption_errors"] = errors
        if benchmark:
            result["mce"] = float(np.nanmean([errors[n]["ce"] for n in benchmark]))
            result["relative_mce"] = float(np.nanmean([errors[n]["relative_ce"] for n in benchmark]))
    return result
