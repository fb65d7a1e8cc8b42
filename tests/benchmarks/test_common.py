"""Spread, per-round ratios, load average and result files of the benchmarks."""

import json

import pytest

from benchmarks import common


def test_ratio_summary_is_per_round():
    # Ratios of the same rounds, not of medians: 2/1, 6/2, 1/1.
    ratios = common.ratio_summary([2.0, 6.0, 1.0], [1.0, 2.0, 1.0])
    assert ratios["runs"] == [2.0, 3.0, 1.0]
    assert (ratios["median"], ratios["min"], ratios["max"]) == (2.0, 1.0, 3.0)


def test_ratio_summary_needs_matching_rounds():
    with pytest.raises(ValueError, match="same non-zero number of rounds"):
        common.ratio_summary([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        common.ratio_summary([], [])


def test_load_average_has_three_values():
    load = common.load_average()
    assert len(load) == 3 and all(x >= 0 for x in load)


def test_write_results_to_a_chosen_directory(tmp_path, capsys):
    common.write_results("demo", {"x": 1}, "# demo\n", str(tmp_path))
    assert json.loads((tmp_path / "demo.json").read_text()) == {"x": 1}
    assert (tmp_path / "demo.md").read_text() == "# demo\n"
