"""Tests for llm_tf/plots.py: the Agg backend and the atomic PNG write."""

import matplotlib
import pytest

from llm_tf import plots
from tests.plot_checks import assert_png


def test_pyplot_draws_on_agg_and_save_png_writes_a_png_atomically(tmp_path):
    plt = plots.pyplot()
    assert matplotlib.get_backend().lower() == "agg"
    figure, ax = plt.subplots(figsize=(4, 3))
    bars = ax.bar(["a", "b"], [1, 2])
    plots.annotate_bars(ax, bars, ["1", "2"])
    path = str(tmp_path / "chart.png")
    plots.save_png(figure, path)
    assert_png(path, 200, 150)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart.png"]
    assert not plt.get_fignums()          # closed


def test_a_failed_draw_leaves_no_file(tmp_path):
    plt = plots.pyplot()
    figure, _ = plt.subplots()
    with pytest.raises(FileNotFoundError):
        plots.save_png(figure, str(tmp_path / "missing_dir" / "chart.png"))
    assert list(tmp_path.iterdir()) == [] and not plt.get_fignums()
