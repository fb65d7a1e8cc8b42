"""Tests for llm_tf/export/evaluation_plots.py: the confusion matrix and sliced metrics charts."""

from llm_tf.export import evaluation_plots
from llm_tf.export.saved_model_eval import confusion_matrix
from tests.plot_checks import assert_png

RESULT = {"metric": "accuracy", "value": 0.75, "count": 8,
          "by_label": {"negative": {"count": 4, "value": 0.5}, "positive": {"count": 4, "value": 1.0}},
          "by_length": {"9-16": {"count": 3, "value": 1.0}, "<=8": {"count": 4, "value": 0.5},
                        ">32": {"count": 1, "value": 1.0}}}


def test_confusion_matrix_of_examples_and_of_words(tmp_path):
    examples = confusion_matrix(["negative"] * 4 + ["positive"] * 4, ["negative", "positive"] * 2 + ["positive"] * 4,
                                "example")
    evaluation_plots.render_confusion_matrix(examples, str(tmp_path / "examples.png"), "candidate models/sst2/1")
    assert_png(tmp_path / "examples.png", 300, 300)
    types = ["LOC", "MISC", "ORG", "PER", "O"] * 3
    words = confusion_matrix(types, types[1:] + types[:1], "word", last="O")
    evaluation_plots.render_confusion_matrix(words, str(tmp_path / "words.png"))
    assert_png(tmp_path / "words.png", 400, 400)


def test_sliced_metrics_with_and_without_the_served_model(tmp_path):
    evaluation_plots.render_sliced_metrics(RESULT, str(tmp_path / "alone.png"))
    assert_png(tmp_path / "alone.png", 800, 400)
    served = {**RESULT, "value": 0.5, "by_label": {"negative": {"count": 4, "value": 0.25}},
              "by_length": {"<=8": {"count": 4, "value": 0.75}}}
    evaluation_plots.render_sliced_metrics(RESULT, str(tmp_path / "served.png"), served, "candidate")
    assert_png(tmp_path / "served.png", 800, 400)
