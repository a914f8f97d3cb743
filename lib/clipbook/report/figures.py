"""Figures several notebooks draw the same way."""
from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PANEL_SIZE = (4.6, 3.7)  # inches per panel
PANELS_PER_ROW = 4


def few_shot_figure(frame: pd.DataFrame, shots: list[int], hue_order: list[str], *, extra_panels: int = 0,
                    reported: Callable[[str, str], dict | None] | None = None, **lineplot_kwargs):
    """Accuracy against shots per class, one panel per (model, dataset) of `frame`.

    Args:
        frame: rows with columns model, dataset, shots, method, accuracy (one per seed; mean ± sd is drawn).
        shots: the shot counts, ticked on a log2 axis.
        hue_order: the methods, in legend order.
        extra_panels: empty panels after the few-shot ones, returned for the caller to fill.
        reported: (model, dataset) -> {shots: accuracy} reported by the paper for `hue_order[0]`, drawn as
            black stars; None or an empty result draws nothing.
        lineplot_kwargs: passed to `seaborn.lineplot` (palette, style, dashes, ...).

    Returns:
        (figure, list of the extra axes).
    """
    panels = frame[["model", "dataset"]].drop_duplicates().values.tolist()
    total = len(panels) + extra_panels
    columns = min(PANELS_PER_ROW, total)
    rows = -(-total // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows), squeeze=False)
    axes = list(axes.flat)
    for ax, (model_name, dataset_name) in zip(axes, panels):
        part = frame[(frame.model == model_name) & (frame.dataset == dataset_name)]
        sns.lineplot(data=part, x="shots", y="accuracy", hue="method", hue_order=hue_order, marker="o",
                     errorbar="sd", ax=ax, **lineplot_kwargs)
        curve = reported(model_name, dataset_name) if reported else None
        if curve:
            ax.plot(list(curve), list(curve.values()), "k*", markersize=9, label=f"{hue_order[0]} (reported)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.set_title(f"{dataset_name} · {model_name}", fontsize=10)
        ax.set_xlabel("shots per class")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.legend(fontsize=8)
    for ax in axes[total:]:
        ax.set_visible(False)
    return fig, axes[len(panels):total]
