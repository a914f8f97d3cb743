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
