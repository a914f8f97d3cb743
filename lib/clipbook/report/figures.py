"""Figures several notebooks draw the same way."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from clipbook.report.record import VERDICT_COLOURS
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


def claim_effects_figure(claims: list[dict]):
    """Every claim's effect with its interval, against its margin and the paper's own effect: one row per claim.

    Args:
        claims: verdicts as `clipbook.claims.evaluate` returns them, each with a `paper` key (the slug); a claim
            without an effect (not tested) keeps its row, labelled with its verdict; colours by verdict.

    Returns:
        The figure.
    """
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.27 * max(len(claims), 1)))
    positions = list(range(len(claims)))[::-1]  # the first claim on top
    for y, claim in zip(positions, claims):
        colour = VERDICT_COLOURS.get(claim["verdict"], "#666")
        if claim.get("effect") is None:
            ax.annotate(claim["verdict"], (0, y), xytext=(4, 0), textcoords="offset points", va="center",
                        color=colour, fontsize=8, style="italic")
            continue
        low, high = claim["interval"] if claim.get("interval") else (claim["effect"], claim["effect"])
        ax.plot([low, high], [y, y], color=colour, linewidth=2, solid_capstyle="butt")
        ax.plot(claim["effect"], y, "o", color=colour, markersize=5)
        ax.plot(claim.get("margin", 0.0), y, "|", color="#222", markersize=10)
        if claim.get("paper_effect") is not None:
            ax.plot(claim["paper_effect"], y, "D", markerfacecolor="none", markeredgecolor="#222", markersize=5)
    ax.axvline(0, color="#999", linewidth=0.8)
    ax.set_yticks(positions, [f"{claim['paper']} · {claim['id']}" for claim in claims], fontsize=8)
    ax.set_ylim(-0.7, len(claims) - 0.3)
    ax.set_xlabel("effect: method − baseline, in the claim's metric (95 % interval over seeds)")
    ax.grid(axis="y", visible=False)
    handles = [plt.Line2D([], [], color=colour, marker="o", linewidth=2, label=verdict)
               for verdict, colour in VERDICT_COLOURS.items()]
    handles += [plt.Line2D([], [], color="#222", marker="|", markersize=10, linestyle="", label="margin"),
                plt.Line2D([], [], color="#222", marker="D", markerfacecolor="none", linestyle="",
                           label="paper's effect")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def reproduced_vs_reported_figure(comparison: list[dict], band: float = 1.0):
    """Each reported number against its reproduced value, with the identity line and a ±`band` band.

    Args:
        comparison: rows of `clipbook.report.rows.compare_with_reported` (reported, reproduced), each with a
            `paper` key (the slug), drawn in one colour per paper.
        band: half-width of the shaded band around the identity, in the metric's unit (points).

    Returns:
        The figure.
    """
    frame = pd.DataFrame(comparison)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    low = float(min(frame["reported"].min(), frame["reproduced"].min())) - 2 * band
    high = float(max(frame["reported"].max(), frame["reproduced"].max())) + 2 * band
    ax.fill_between([low, high], [low - band, high - band], [low + band, high + band], color="#1a7f37", alpha=0.12,
                    linewidth=0, label=f"±{band:g} point")
    ax.plot([low, high], [low, high], color="#444", linewidth=1, label="reproduced = reported")
    sns.scatterplot(data=frame, x="reported", y="reproduced", hue="paper", ax=ax, s=28)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel("reported by the paper")
    ax.set_ylabel("reproduced (mean over seeds)")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def reliability_figure(bins: dict[str, pd.DataFrame], *, ece: dict[str, float] | None = None, ax=None):
    """Reliability diagrams (Guo et al. 2017, fig. 1) of several models on one axis: accuracy against mean
    confidence per filled bin (`clipbook.evaluation.robustness.reliability_bins`), the diagonal of perfect
    calibration, and marker areas proportional to the bins' counts.

    Args:
        bins: label -> reliability bins (lower, upper, count, accuracy, confidence).
        ece: label -> ECE (fraction), shown in the legend.
        ax: an axis to draw on; a new figure otherwise.

    Returns:
        The axis.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=PANEL_SIZE)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    for label, frame in bins.items():
        filled = frame[frame["count"] > 0]
        text = label + (f" (ECE {100 * ece[label]:.1f} %)" if ece and label in ece else "")
        line, = ax.plot(filled["confidence"], filled["accuracy"], marker="", linewidth=1.2, label=text)
        ax.scatter(filled["confidence"], filled["accuracy"], s=8 + 300 * filled["count"] / filled["count"].sum(),
                   color=line.get_color(), alpha=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", aspect="equal")
    ax.legend(fontsize=8, loc="upper left")
    return ax
