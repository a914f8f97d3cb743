"""Figures several notebooks draw the same way."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from clipbook.report.rows import as_frame

PANEL_SIZE = (4.6, 3.7)  # inches per panel
PANELS_PER_ROW = 4


def few_shot_figure(rows, shots: list[int], hue_order: list[str], *, extra_panels: int = 0, reported=None,
                    metric: str = "accuracy", **lineplot_kwargs):
    """A metric against shots per class, one panel per (model, dataset) of the tidy `rows`.

    Args:
        rows: tidy result rows (model, dataset, method, metric, value, shots, seed); rows without `shots` (zero-shot
            CLIP) are drawn flat across all shot counts; mean ± sd over seeds is drawn.
        shots: the shot counts, ticked on a log2 axis.
        hue_order: the methods, in legend order.
        extra_panels: empty panels after the few-shot ones, returned for the caller to fill.
        reported: the paper's reported rows; those of the panel's model and dataset with shots are drawn as black
            stars (one marker style per method).
        metric: which rows' metric to draw.
        lineplot_kwargs: passed to `seaborn.lineplot` (palette, style, dashes, ...).

    Returns:
        (figure, list of the extra axes).
    """
    frame = as_frame(rows)
    frame = frame[(frame["metric"] == metric) & frame["method"].isin(hue_order)]
    if "shots" not in frame:
        frame = frame.assign(shots=float("nan"))
    flat = frame[frame["shots"].isna()]
    frame = pd.concat([frame[frame["shots"].notna()]] + [flat.assign(shots=k) for k in shots], ignore_index=True)
    reported_frame = as_frame(reported)
    panels = frame[["model", "dataset"]].drop_duplicates().values.tolist()
    total = len(panels) + extra_panels
    columns = min(PANELS_PER_ROW, total)
    rows_of_panels = -(-total // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows_of_panels),
                             squeeze=False)
    axes = list(axes.flat)
    for ax, (model_name, dataset_name) in zip(axes, panels):
        part = frame[(frame.model == model_name) & (frame.dataset == dataset_name)]
        sns.lineplot(data=part, x="shots", y="value", hue="method", hue_order=hue_order, marker="o",
                     errorbar="sd", ax=ax, **lineplot_kwargs)
        if len(reported_frame) and "shots" in reported_frame:
            stars = reported_frame[(reported_frame.model == model_name) & (reported_frame.dataset == dataset_name)
                                   & (reported_frame.metric == metric) & reported_frame["shots"].notna()]
            for (method, points), marker in zip(stars.groupby("method", sort=False), "*^sD"):
                ax.plot(points["shots"], points["value"], "k" + marker, markersize=9, label=f"{method} (reported)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.set_title(f"{dataset_name} · {model_name}", fontsize=10)
        ax.set_xlabel("shots per class")
        ax.set_ylabel(f"{'top-1 accuracy (%)' if metric == 'accuracy' else metric}")
        ax.legend(fontsize=8)
    for ax in axes[total:]:
        ax.set_visible(False)
    return fig, axes[len(panels):total]


def calibration_figure(rows, reference: dict, counterparts: dict[str, str], shots: list[int]):
    """The toy suite against real CLIP, one panel per toy dataset: the toy linear-probe curve (mean ± sd over
    seeds) and zero-shot line, beside the reference model's curve and zero-shot line on the counterpart dataset.

    Args:
        rows: tidy rows of `baselines.baseline_curves` (methods "zero-shot CLIP" and "linear probe").
        reference: {counterpart: {"zero_shot": float, "linear_probe": {shots: float} or None}}.
        counterparts: {toy dataset: counterpart name}.
        shots: the shot counts, ticked on a log2 axis.
    """
    frame = as_frame(rows)
    datasets = list(dict.fromkeys(frame["dataset"]))
    columns = min(PANELS_PER_ROW, len(datasets))
    fig, axes = plt.subplots(-(-len(datasets) // columns), columns, figsize=(4.2 * columns, 3.3 * -(-len(datasets) // columns)),
                             squeeze=False, sharey=True)
    toy_colour, real_colour = sns.color_palette("colorblind")[0], (0.35, 0.35, 0.35)
    for ax, dataset in zip(axes.flat, datasets):
        part = frame[frame["dataset"] == dataset]
        probe = part[part["method"] == "linear probe"]
        sns.lineplot(data=probe, x="shots", y="value", marker="o", errorbar="sd", color=toy_colour, ax=ax,
                     label="toy: linear probe")
        zero_shot = part.loc[part["method"] == "zero-shot CLIP", "value"]
        if len(zero_shot):
            ax.axhline(float(zero_shot.iloc[0]), color=toy_colour, linestyle="--", label="toy: zero-shot")
        ref = reference.get(counterparts.get(dataset, ""), {})
        if ref.get("linear_probe"):
            points = sorted((int(k), v) for k, v in ref["linear_probe"].items() if v is not None)
            ax.plot([k for k, _ in points], [v for _, v in points], marker="s", color=real_colour,
                    label="RN50: linear probe")
        if ref.get("zero_shot") is not None:
            ax.axhline(ref["zero_shot"], color=real_colour, linestyle=":", label="RN50: zero-shot")
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.set_ylim(0, 100)
        ax.set_title(f"{dataset} ~ {counterparts.get(dataset, '?')}", fontsize=10)
        ax.set_xlabel("shots per class")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_visible(False)
    return fig
