"""saved_model_eval: length buckets, batching, reading a prepared eval split, and the sliced
evaluation of a SavedModel (classification: accuracy; token classification: entity F1).

Exact numbers come from tiny SavedModels with known answers (tests/pipeline/saved_models.py);
the exported tiny classifier (``exported_version``) checks the contract of a real export.
"""

import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError, DataError
from llm_tf.export.saved_model_eval import (
    DEFAULT_BUCKETS,
    batches,
    bucket_name,
    bucket_order,
    check_buckets,
    confusion_matrix,
    entity_type,
    evaluate_saved_model,
    load_serving_signature,
    read_eval_split,
)
from tests.pipeline.saved_models import (
    predicted_label,
    save_capital_tagger,
    save_length_classifier,
    save_without_serving_default,
)

TEXTS = ["a b", "a b c d", "one two three four five", "six words in this short text"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> str:
    """Predicts "1" for texts of more than 3 words."""
    return save_length_classifier(str(tmp_path_factory.mktemp("models") / "classifier"), max_words=3)


@pytest.fixture(scope="module")
def tagger(tmp_path_factory) -> str:
    """Tags capitalised words B-PER."""
    return save_capital_tagger(str(tmp_path_factory.mktemp("models") / "tagger"))


@pytest.mark.parametrize("words, name", [(0, "<=8"), (1, "<=8"), (8, "<=8"), (9, "9-16"), (16, "9-16"),
                                         (17, "17-32"), (32, "17-32"), (33, ">32"), (1000, ">32")])
def test_bucket_name_with_the_default_buckets(words, name):
    assert bucket_name(words, DEFAULT_BUCKETS) == name


def test_bucket_name_with_one_boundary_and_none():
    assert [bucket_name(n, (5,)) for n in (5, 6)] == ["<=5", ">5"]
    with pytest.raises(ConfigError, match="buckets: give at least one boundary"):
        bucket_name(3, ())


@pytest.mark.parametrize("bad", [(), (0, 8), (8, 8), (16, 8), (-1,)])
def test_buckets_must_be_increasing_positive_word_counts(bad):
    with pytest.raises(ConfigError, match=r"^length_buckets must be increasing positive word counts, got \["):
        check_buckets(bad, "length_buckets")


def test_check_buckets_returns_a_tuple():
    assert check_buckets([4, 8]) == (4, 8)


def test_batches_slices_in_order_and_refuses_a_size_below_one():
    assert list(batches(list(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches([1, 2], 5)) == [[1, 2]] and list(batches([], 2)) == []
    with pytest.raises(ConfigError, match="batch size must be >= 1, got 0"):
        batches([1, 2], 0)          # at the call, not at the first item


def test_classification_accuracy_overall_by_label_and_by_length(classifier):
    gold = ["0", "0", "1", "0"]     # predicted: 0, 1, 1, 1
    result = evaluate_saved_model(classifier, TEXTS, gold, "classification", buckets=(2, 4))
    assert [predicted_label(t, 3) for t in TEXTS] == ["0", "1", "1", "1"]
    assert result == {"metric": "accuracy", "value": 0.5, "count": 4,
                      "by_label": {"0": {"count": 3, "value": pytest.approx(1 / 3)}, "1": {"count": 1, "value": 1.0}},
                      "by_length": {"<=2": {"count": 1, "value": 1.0}, "3-4": {"count": 1, "value": 0.0},
                                    ">4": {"count": 2, "value": 0.5}},
                      # rows gold, columns predicted: gold 0 -> 0 once, -> 1 twice; gold 1 -> 1
                      "confusion_matrix": {"labels": ["0", "1"], "counts": [[1, 2], [0, 1]], "unit": "example"}}


def test_the_batch_size_does_not_change_the_result(classifier):
    gold = ["1", "1", "1", "0"]
    one = evaluate_saved_model(classifier, TEXTS, gold, "classification", batch_size=1)
    assert one == evaluate_saved_model(classifier, TEXTS, gold, "classification", batch_size=64)
    assert one["value"] == 0.5 and one["by_length"] == {"<=8": {"count": 4, "value": 0.5}}


def test_entity_f1_overall_by_type_and_by_length(tagger):
    texts = ["John lives in Paris", "the cat sat", "Mary met Bob in the old town of the big city today"]
    gold = [["B-PER", "O", "O", "B-LOC"], ["O", "O", "O"], ["B-PER", "O", "B-PER"] + ["O"] * 9]
    # predicted entities: PER John, PER Paris (wrong type), PER Mary, PER Bob: 3 of 4 right, 3 of 4 found.
    result = evaluate_saved_model(tagger, texts, gold, "token_classification", buckets=(4, 8))
    assert result["metric"] == "entity_f1" and result["count"] == 3
    assert result["value"] == pytest.approx(0.75)
    assert result["by_label"] == {"LOC": {"count": 1, "value": 0.0}, "PER": {"count": 3, "value": pytest.approx(6 / 7)}}
    assert result["by_length"] == {"<=4": {"count": 2, "value": pytest.approx(0.5)}, ">8": {"count": 1, "value": 1.0}}
    # Per word, by entity type: Paris (LOC) tagged PER; the 3 PER words right; the 15 O words stay O.
    assert result["confusion_matrix"] == {"labels": ["LOC", "PER", "O"], "unit": "word",
                                          "counts": [[0, 1, 0], [0, 3, 0], [0, 0, 15]]}


def test_words_without_a_tag_count_as_o(tmp_path):
    cut = save_capital_tagger(str(tmp_path / "cut"), max_words=3)     # like a sequence length that cuts Paris: ""
    texts = ["John lives in Paris", "the cat"]                           # the short text's tags are padded with ""
    gold = [["B-PER", "O", "O", "B-PER"], ["O", "O"]]
    result = evaluate_saved_model(cut, texts, gold, "token_classification")
    assert result["value"] == pytest.approx(2 / 3)                       # precision 1, recall 1/2
    assert result["by_label"] == {"PER": {"count": 2, "value": pytest.approx(2 / 3)}}


def test_read_eval_split_of_a_prepared_classification_set(prepared_sample):
    texts, labels = read_eval_split(prepared_sample, "classification")
    assert len(texts) == len(labels) == 16 and sorted(set(labels)) == ["0", "1"]
    assert all(isinstance(t, str) and t for t in texts)
    assert read_eval_split(prepared_sample, "classification", 5) == (texts[:5], labels[:5])


def test_read_eval_split_of_a_prepared_ner_set(prepared_conll_sample):
    texts, tags = read_eval_split(prepared_conll_sample, "token_classification")
    assert texts == ["Anna Berg visited Oslo .", "Acme Corp opened an office in Cairo ."]   # conll_sample/dev.txt
    assert tags == [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "I-ORG", "O", "O", "O", "O", "B-LOC", "O"]]
    assert read_eval_split(prepared_conll_sample, "token_classification", 1) == (texts[:1], tags[:1])


def test_an_exported_classifier_on_its_eval_split(exported_version, prepared_sample):
    texts, gold = read_eval_split(prepared_sample, "classification")
    result = evaluate_saved_model(exported_version, texts, gold, "classification", batch_size=5)
    assert result["metric"] == "accuracy" and result["count"] == 16
    assert {k: v["count"] for k, v in result["by_label"].items()} == {"0": 8, "1": 8}
    assert sum(v["count"] for v in result["by_length"].values()) == 16
    weighted = sum(v["count"] * v["value"] for v in result["by_label"].values()) / 16
    assert result["value"] == pytest.approx(weighted)
    _, serve = load_serving_signature(exported_version)
    predicted = [label.decode() for label in serve(text=tf.constant(texts))["labels"].numpy()]
    assert result["value"] == pytest.approx(sum(p == g for p, g in zip(predicted, gold)) / 16)


def test_a_classifier_is_not_a_tagger(classifier):
    with pytest.raises(DataError, match=r"serving_default has no 'tags' output for token_classification \(outputs: "
                                        r"label_ids, labels, scores\)"):
        evaluate_saved_model(classifier, ["a text"], [["O", "O"]], "token_classification")


def test_nothing_to_evaluate_and_gold_that_does_not_match(classifier):
    with pytest.raises(DataError, match="nothing to evaluate"):
        evaluate_saved_model(classifier, [], [], "classification")
    with pytest.raises(DataError, match="4 texts but 3 gold entries"):
        evaluate_saved_model(classifier, TEXTS, ["0"] * 3, "classification")


def test_bad_task_buckets_and_batch_size(classifier):
    with pytest.raises(ConfigError, match="task must be one of classification, token_classification, got 'text'"):
        evaluate_saved_model(classifier, TEXTS, ["0"] * 4, "text")
    with pytest.raises(ConfigError, match=r"buckets must be increasing positive word counts, got \[8, 4\]"):
        evaluate_saved_model(classifier, TEXTS, ["0"] * 4, "classification", buckets=(8, 4))
    with pytest.raises(ConfigError, match="batch size must be >= 1, got -1"):
        evaluate_saved_model(classifier, TEXTS, ["0"] * 4, "classification", batch_size=-1)


def test_no_saved_model_or_no_serving_default(tmp_path):
    with pytest.raises(DataError, match=r"/missing: no SavedModel there"):
        load_serving_signature(str(tmp_path / "missing"))
    other = save_without_serving_default(str(tmp_path / "other"))
    with pytest.raises(DataError, match=r"/other: no serving_default signature \(signatures: other\)"):
        evaluate_saved_model(other, ["a"], ["0"], "classification")


def test_read_eval_split_without_data(tmp_path):
    with pytest.raises(DataError, match=r"/nowhere: prepared data directory not found"):
        read_eval_split(str(tmp_path / "nowhere"), "classification")
    (tmp_path / "empty" / "examples").mkdir(parents=True)
    with pytest.raises(DataError, match=r"/empty/examples: no TFRecord shards for split 'eval'"):
        read_eval_split(str(tmp_path / "empty"), "token_classification")


def test_confusion_matrix_rows_are_gold_columns_predicted_and_o_goes_last():
    matrix = confusion_matrix(["b", "a", "a", "O"], ["a", "a", "c", "O"], "example", last="O")
    assert matrix == {"labels": ["a", "b", "c", "O"], "unit": "example",
                      "counts": [[1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]}


@pytest.mark.parametrize("tag, kind", [("B-PER", "PER"), ("I-LOC", "LOC"), ("S-ORG", "ORG"), ("E-MISC", "MISC"),
                                       ("O", "O"), ("", "O"), ("PER", "PER"), ("B-", "B-")])
def test_entity_type_drops_the_bio_prefix(tag, kind):
    assert entity_type(tag) == kind


def test_length_buckets_sort_by_length():
    names = [bucket_name(n, DEFAULT_BUCKETS) for n in (40, 10, 3, 20)]
    assert sorted(names, key=bucket_order) == ["<=8", "9-16", "17-32", ">32"]
    assert sorted(["x", ">5", "<=5"], key=bucket_order) == ["<=5", ">5", "x"]
