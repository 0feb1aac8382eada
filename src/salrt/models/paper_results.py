"""The accuracy figures the models' papers report (``paper_results.csv``, one data file with the
paper's table and line cited per row), for ``salrt eval`` to print next to its own numbers."""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from typing import Any

METRIC_COLUMNS = ("cc", "nss", "auc_judd", "sim")


@lru_cache(maxsize=1)
def _rows() -> tuple[dict[str, Any], ...]:
    text = resources.files("salrt.models").joinpath("paper_results.csv").read_text(encoding="utf-8")
    out = []
    for r in csv.DictReader(line for line in text.splitlines() if not line.startswith("#")):
        row: dict[str, Any] = dict(r)
        for m in METRIC_COLUMNS:
            row[m] = float(r[m]) if r[m] else None
        out.append(row)
    return tuple(out)


def paper_results(model: str, preset: str | None = None, dataset: str | None = None) -> list[dict[str, Any]]:
    """Rows ``{model, preset, variant, dataset, split, cc, nss, auc_judd, sim, source, note}`` (a
    metric the paper does not report is None) for ``model``, optionally one preset and dataset."""
    return [
        dict(r)
        for r in _rows()
        if r["model"] == model.lower()
        and (preset is None or r["preset"] == preset)
        and (dataset is None or r["dataset"] == dataset.lower())
    ]
