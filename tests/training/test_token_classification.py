"""Tests for llm_tf/training/token_classification.py."""

import json

import pytest
import tensorflow as tf

from llm_tf.data.prepare import PrepareConfig, prepare
from llm_tf.errors import DataError
from llm_tf.text.alignment import IGNORE_ID
from llm_tf.training import configs, strategies, tasks, train_lib
from llm_tf.training.metrics import MaskedAccuracy
from llm_tf.training.token_classification import entity_scores
from tests.conftest import REPO

CONLL = REPO / "samples" / "conll_sample"
FAST = "task.data.seq_length=32,task.data.global_batch_size=4,task.data.eval_batch_size=4"


@pytest.fixture(scope="module")
def prepared_conll(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("prepared") / "conll"
    prepare(PrepareConfig(output_dir=str(out), inputs=[str(CONLL / "train.txt")], eval_inputs=[str(CONLL / "dev.txt")],
                          task="token_classification", lower_case=False, vocab_size=200))
    return str(out)


def experiment(prepared, override=""):
    config = tasks.experiment_config("token_classification")
    return configs.apply_overrides(config, [],
                                   f"task.data.prepared_dir={prepared},{FAST}" + (f",{override}" if override else ""))


def test_entity_scores_follow_conll_rules():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O"]]  # 2 of 3 entities found, none spurious
    scores = entity_scores(gold, predicted)
    assert scores["entity_precision"] == 1.0
    assert scores["entity_recall"] == pytest.approx(2 / 3)
    assert scores["entity_f1"] == pytest.approx(0.8)
    # A half-right span (B-PER without its I-PER) is a miss at entity level.
    assert entity_scores([["B-PER", "I-PER"]], [["B-PER", "O"]])["entity_f1"] == 0.0


def test_masked_accuracy_ignores_unscored_positions():
    metric = MaskedAccuracy()
    labels = tf.constant([[IGNORE_ID, 1, IGNORE_ID, 0]])
    logits = tf.constant([[[0.0, 9.0], [0.0, 9.0], [9.0, 0.0], [0.0, 9.0]]])  # right on 1 of the 2 scored positions
    metric.update_state(labels, logits)
    assert float(metric.result()) == 0.5


def test_inputs_carry_first_sub_word_labels(prepared_conll):
    task = tasks.build_task(experiment(prepared_conll))
    features, labels = next(iter(task.build_inputs("eval", training=False)))
    assert tuple(labels.shape) == (2, 32) and labels.dtype == tf.int32
    labels = labels.numpy()
    assert (labels[:, 0] == IGNORE_ID).all()  # [CLS]
    tag_ids = {tag: i for i, tag in enumerate(task.tags)}
    # "Anna Berg visited Oslo ." -> B-PER I-PER O B-LOC O on the first sub-word of each word.
    assert [t for t in labels[0] if t != IGNORE_ID] == [tag_ids[t] for t in ["B-PER", "I-PER", "O", "B-LOC", "O"]]
    assert (features["padding_mask"].numpy().sum(axis=1) > 0).all()


def test_trains_and_reports_entity_f1(tmp_path, prepared_conll):
    config = experiment(prepared_conll,
                        "trainer.train_steps=40,trainer.steps_per_loop=20,trainer.optimizer.learning_rate=0.003")
    trainer = train_lib.Trainer(config, str(tmp_path), strategies.make_strategy())
    before = trainer.evaluate()
    after = trainer.train(evaluate=True)
    assert after["val_loss"] < before["val_loss"]
    assert 0.0 <= after["val_entity_f1"] <= 1.0
    assert after["val_entity_f1"] > before["val_entity_f1"]
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["metric"] == "val_entity_f1"
    assert "val_entity_f1" in json.loads((tmp_path / "metrics.json").read_text())


def test_classification_data_is_refused(prepared_sample):
    with pytest.raises(DataError, match="prepared for 'classification', not token_classification"):
        tasks.build_task(experiment(prepared_sample))
