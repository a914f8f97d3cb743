"""Tidy result rows: the one table every notebook records.

A row is `{model, dataset, method, metric, value}` plus `shots` and `seed` where they apply and any free
scalar columns (a chosen hyper-parameter, a split). The paper's reported numbers are rows in the same
columns with a `source` (table, figure or log, and a link with a commit where there is one). Means,
standard deviations, intervals and reported-minus-reproduced deltas are computed here, never by hand.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
from scipy import stats

REQUIRED = ("model", "dataset", "method", "metric", "value")
KEYS = ("model", "dataset", "method", "metric", "shots")


def _check_value(position: int, row: dict) -> float:
    value = row["value"]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"row {position}: value must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"row {position}: value is {value}; record only finite numbers ({row})")
    return value


def as_frame(rows) -> pd.DataFrame:
    """Rows (list of dicts or DataFrame) as a validated DataFrame with at least the required columns."""
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows or []))
    if frame.empty:
        return pd.DataFrame(columns=list(REQUIRED))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise KeyError(f"result rows need the columns {', '.join(REQUIRED)}; missing {', '.join(missing)}")
    for position, row in enumerate(frame.to_dict("records")):
        _check_value(position, row)
        for column in ("model", "dataset", "method", "metric"):
            if not isinstance(row[column], str) or not row[column]:
                raise TypeError(f"row {position}: {column} must be a non-empty string, got {row[column]!r}")
    frame["value"] = frame["value"].astype(float)
    return frame


def reported_rows(values: list[dict], *, source: str, url: str = "", **common) -> list[dict]:
    """The paper's numbers as rows: each of `values` merged with the `common` columns and its source.

    Example: reported_rows([{"dataset": "eurosat", "shots": 16, "value": 86.12}], source="exp.log",
    url="https://github.com/.../blob/<commit>/exp.log", model="RN50", method="GDA", metric="accuracy").
    """
    if not source:
        raise ValueError("every reported number needs its source (table, figure or log)")
    rows = [{**common, **value, "source": source, **({"url": url} if url else {})} for value in values]
    as_frame(rows)  # validate now, where the numbers are typed, not when the record is written
    return rows


class ModelRows:
    """The rows one model gives under one method (and seed), built as it is evaluated:
    `add(dataset, metric, value)`, or `add_all(dataset, {metric: value})`; `rows` is the list."""

    def __init__(self, model: str, method: str, seed=None):
        self.model, self.method, self.seed = model, method, seed
        self.rows: list[dict] = []

    def add(self, dataset: str, metric: str, value) -> None:
        self.rows.append({"model": self.model, "dataset": dataset, "method": self.method, "metric": metric,
                          "seed": self.seed, "value": float(value)})

    def add_all(self, dataset: str, metrics: dict) -> None:
        for metric, value in metrics.items():
            self.add(dataset, metric, value)


def arm_means(rows, order: list[str], columns: list[str] | None = None) -> pd.DataFrame:
    """One line per method (the arms of a training comparison, in `order`; absent ones left out), one column per
    metric: each seed's mean over datasets, then the mean over seeds, so that every seed weighs the same whatever
    the number of datasets. `columns` picks and orders the metrics (absent ones left out); default: all, sorted."""
    frame = as_frame(rows)
    if "seed" not in frame.columns:
        frame["seed"] = None
    per_seed = frame.groupby(["method", "metric", "seed"], dropna=False)["value"].mean().reset_index()
    table = per_seed.groupby(["method", "metric"])["value"].mean().unstack("metric")
    table = table.reindex([method for method in dict.fromkeys(order) if method in table.index])
    if columns is not None:
        table = table[[column for column in columns if column in table.columns]]
    return table


def summarise(rows, confidence: float = 0.95) -> pd.DataFrame:
    """Mean, standard deviation, count and a Student-t interval over seeds for each (model, dataset, method,
    metric, shots)."""
    frame = as_frame(rows)
    for column in ("shots", "seed"):  # whole numbers, shown as 16 not 16.0; missing stays <NA>
        if column in frame.columns:
            frame[column] = frame[column].astype("Int64")
    keys = [k for k in KEYS if k in frame.columns]
    grouped = frame.groupby(keys, dropna=False, sort=False)["value"]
    summary = grouped.agg(["mean", "std", "count"]).reset_index()
    half = [stats.t.ppf(0.5 + confidence / 2, n - 1) * s / math.sqrt(n) if n > 1 else np.nan
            for n, s in zip(summary["count"], summary["std"])]
    summary["ci_low"] = summary["mean"] - np.array(half, dtype=float)
    summary["ci_high"] = summary["mean"] + np.array(half, dtype=float)
    return summary


def compare_with_reported(rows, reported) -> pd.DataFrame:
    """Reproduced means beside the paper's reported numbers, matched on model, dataset, method, metric and
    shots, with `delta` = reproduced − reported."""
    reported_frame = as_frame(reported)
    if reported_frame.empty:
        return pd.DataFrame(columns=[*KEYS, "reported", "reproduced", "delta", "source"])
    summary = summarise(rows)
    keys = [k for k in KEYS if k in reported_frame.columns and k in summary.columns]
    merged = reported_frame.rename(columns={"value": "reported"}).merge(
        summary.rename(columns={"mean": "reproduced"})[keys + ["reproduced"]], on=keys, how="left")
    merged["delta"] = merged["reproduced"] - merged["reported"]
    return merged[[*keys, "reported", "reproduced", "delta", "source"]]


def records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: NaN cells dropped, numbers as plain floats/ints, values rounded to 4 decimals."""
    out = []
    for row in frame.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if isinstance(value, (np.integer,)):
                value = int(value)
            elif isinstance(value, (float, np.floating)):
                value = float(value)
                value = int(value) if key in ("shots", "seed") and value.is_integer() else round(value, 4)
            elif isinstance(value, np.bool_):
                value = bool(value)
            elif not isinstance(value, (str, int, bool)):
                value = str(value)
            clean[key] = value
        out.append(clean)
    return out
