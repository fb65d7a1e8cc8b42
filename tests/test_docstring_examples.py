"""Runs the docstring examples of the modules whose examples are self-contained.

Other modules' examples show a call in context (a trained model, a data file) and are not run.
"""

import doctest
import importlib

import pytest

SELF_CONTAINED = (
    "llm_tf.data.bad_rows",
    "llm_tf.io_utils",
    "llm_tf.data.labels",
    "llm_tf.data.splits",
    "llm_tf.data.statistics",
    "llm_tf.data.tfrecords",
    "llm_tf.data.transfer_set_sources",
    "llm_tf.pipeline.blessing",
    "llm_tf.pipeline.overrides",
    "llm_tf.serving.batching",
    "llm_tf.serving.config",
    "llm_tf.serving.monitoring",
    "llm_tf.serving.protos",
    "llm_tf.text.vocab",
    "llm_tf.training.optimizers",
    "llm_tf.training.pruning",
    "llm_tf.training.tasks",
)


@pytest.mark.parametrize("module_name", SELF_CONTAINED)
def test_docstring_examples_run(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module_name} has no examples left to run"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {module_name} failed (output above)"
