"""StatisticsGen's executor alone: ``statistics.json`` of the examples copied into its artifact, with
counts, OOV and truncation rates per split as properties; examples without statistics named."""

import json
import os

import pytest

from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import StatisticsGen
from llm_tf.pipeline.errors import PipelineError
from tests.pipeline.components.harness import artifact, execute, ref

EXAMPLES = ref(artifacts.EXAMPLES, "ExampleGen", "examples")
STATS = {"train": {"count": 60, "oov_rate": 0.01, "truncated_fraction": 0.0, "duplicates": 2, "words": {"p50": 7}},
         "eval": {"count": 16, "oov_rate": 0.125, "truncated_fraction": 0.5, "duplicates": 0},
         "rejected": {"count": 1, "by_reason": {"empty_text": 1}}}


def _examples(directory, stats: dict) -> str:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "statistics.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f)
    return str(directory)


def test_the_statistics_are_copied_with_their_key_facts(tmp_path):
    examples = _examples(tmp_path / "examples", STATS)
    run = execute(StatisticsGen(EXAMPLES), tmp_path, {"examples": artifact(artifacts.EXAMPLES, examples)})
    with open(os.path.join(run.outputs["statistics"], "statistics.json"), encoding="utf-8") as f:
        assert json.load(f) == STATS
    assert run.props("statistics") == {
        "train": {"count": 60, "oov_rate": 0.01, "truncated_fraction": 0.0, "duplicates": 2},
        "eval": {"count": 16, "oov_rate": 0.125, "truncated_fraction": 0.5, "duplicates": 0}}
    assert run.result.metrics == {"train_oov": 0.01, "eval_oov": 0.125}


def test_a_train_split_alone_and_missing_facts(tmp_path):
    examples = _examples(tmp_path / "examples", {"train": {"count": 3, "oov_rate": 0.5}})
    run = execute(StatisticsGen(EXAMPLES), tmp_path, {"examples": artifact(artifacts.EXAMPLES, examples)})
    assert run.props("statistics") == {"train": {"count": 3, "oov_rate": 0.5, "truncated_fraction": None,
                                                 "duplicates": None}}
    assert run.result.metrics == {"train_oov": 0.5}


def test_examples_without_statistics_are_named(tmp_path):
    (tmp_path / "examples").mkdir()
    with pytest.raises(PipelineError, match=r"^input 'examples' \(Examples at .*/examples\) has no statistics.json$"):
        execute(StatisticsGen(EXAMPLES), tmp_path, {"examples": artifact(artifacts.EXAMPLES, tmp_path / "examples")})
    assert os.listdir(tmp_path / "out" / "statistics") == []
