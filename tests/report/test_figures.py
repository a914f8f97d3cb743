import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from clipbook.report.figures import few_shot_figure  # noqa: E402


def _rows(datasets):
    rows = [{"model": "m", "dataset": ds, "shots": k, "seed": seed, "method": method, "metric": "accuracy",
             "value": 50.0 + k + seed}
            for ds in datasets for k in (1, 2, 4) for seed in (1, 2) for method in ("A", "B")]
    # a seedless, shotless baseline is drawn flat across the shot counts
    return rows + [{"model": "m", "dataset": ds, "method": "Z", "metric": "accuracy", "value": 42.0} for ds in datasets]


def test_one_panel_per_model_and_dataset_with_spare_axes_hidden_and_extra_ones_returned():
    fig, extra = few_shot_figure(_rows(["d1", "d2", "d3", "d4", "d5"]), [1, 2, 4], ["A", "B"], extra_panels=1)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 8 and len(visible) == 6 and extra == [fig.axes[5]]
    assert [ax.get_title() for ax in visible[:5]] == [f"d{i} · m" for i in range(1, 6)]
    assert visible[0].get_xscale() == "log" and [t.get_text() for t in visible[0].get_xticklabels()] == ["1", "2", "4"]
    plt.close(fig)


def test_shotless_rows_are_drawn_flat_at_every_shot_count():
    fig, _ = few_shot_figure(_rows(["d1"]), [1, 2, 4], ["A", "Z"])
    flat = [line for line in fig.axes[0].lines if list(line.get_ydata()) == [42.0, 42.0, 42.0]]
    assert len(flat) == 1
    plt.close(fig)


def test_reported_points_are_drawn_only_where_given():
    reported = [{"model": "m", "dataset": "d1", "method": "A", "metric": "accuracy", "shots": k, "value": v,
                 "source": "table 1"} for k, v in ((1, 40.0), (4, 60.0))]
    fig, extra = few_shot_figure(_rows(["d1", "d2"]), [1, 2, 4], ["A", "B"], reported=reported)
    stars = [[line for line in ax.lines if line.get_label() == "A (reported)"] for ax in fig.axes]
    assert extra == [] and len(stars[0]) == 1 and stars[1] == []
    assert list(stars[0][0].get_ydata()) == [40.0, 60.0]
    plt.close(fig)


def _claim(paper, claim_id, verdict, effect, interval=None, paper_effect=None):
    return {"paper": paper, "id": claim_id, "verdict": verdict, "effect": effect, "interval": interval,
            "margin": 0.5, "paper_effect": paper_effect}


def test_claim_effects_have_one_row_per_claim_with_interval_margin_and_paper_effect():
    from clipbook.report.figures import claim_effects_figure
    from clipbook.report.record import VERDICT_COLOURS

    claims = [_claim("gda", "a", "holds", 3.0, [2.0, 4.0], paper_effect=17.0),
              _claim("coop", "b", "not tested", None), _claim("coop", "c", "inconclusive", 0.4, [-1.0, 1.8])]
    fig = claim_effects_figure(claims)
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["gda · a", "coop · b", "coop · c"]
    bars = [line for line in ax.lines if len(line.get_xdata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]]
    assert sorted((tuple(line.get_xdata()), line.get_color()) for line in bars) == [
        ((-1.0, 1.8), VERDICT_COLOURS["inconclusive"]), ((2.0, 4.0), VERDICT_COLOURS["holds"])]
    assert [text.get_text() for text in ax.texts] == ["not tested"]  # the untested claim keeps its row
    assert sorted(line.get_xdata()[0] for line in ax.lines if line.get_marker() == "D") == [17.0]
    assert sorted(line.get_xdata()[0] for line in ax.lines if line.get_marker() == "|") == [0.5, 0.5]
    plt.close(fig)


def test_reproduced_against_reported_draws_every_row_the_identity_and_the_band():
    from clipbook.report.figures import reproduced_vs_reported_figure

    comparison = [{"paper": "gda", "reported": 60.0, "reproduced": 60.5}, {"paper": "gda", "reported": 70.0,
                                                                          "reproduced": 66.0},
                  {"paper": "coop", "reported": 80.0, "reproduced": 80.2}]
    fig = reproduced_vs_reported_figure(comparison)
    ax = fig.axes[0]
    points = sorted(tuple(xy) for collection in ax.collections[1:] for xy in collection.get_offsets())
    assert points == [(60.0, 60.5), (70.0, 66.0), (80.0, 80.2)]
    identity = ax.lines[0]
    assert list(identity.get_xdata()) == list(identity.get_ydata())
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].max() - band[:, 0].max() == 1.0  # the band's upper edge is one point above the identity
    plt.close(fig)


def test_reliability_figure_draws_the_filled_bins_of_each_model_and_the_diagonal():
    import torch

    from clipbook.evaluation.robustness import expected_calibration_error, reliability_bins
    from clipbook.report.figures import reliability_figure

    probabilities = torch.softmax(torch.randn(200, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    labels = torch.zeros(200, dtype=torch.int64)
    bins = {"a": reliability_bins(probabilities, labels), "b": reliability_bins(probabilities, labels, 5)}
    ax = reliability_figure(bins, ece={"a": expected_calibration_error(probabilities, labels)})
    assert [list(line.get_xdata()) for line in ax.lines][0] == [0, 1]
    assert len(ax.lines[1].get_xdata()) == (bins["a"]["count"] > 0).sum()
    assert ax.get_legend().get_texts()[1].get_text().startswith("a (ECE ")
    plt.close(ax.figure)
