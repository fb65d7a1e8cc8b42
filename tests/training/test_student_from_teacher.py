"""A student started from the teacher's own layers with a cut vocabulary (llm_tf/models/student_init.py,
llm_tf/text/vocab_cut.py, the distillation task's student_init_layers, teacher logits across vocabularies)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.data.prepare import PrepareConfig, prepare
from llm_tf.errors import ConfigError
from llm_tf.text.tokenizer import TextTokenizer
from llm_tf.text.vocab_cut import CUT_FILE
from llm_tf.training import model_dir as model_dir_lib
from llm_tf.training import tasks, teacher_logits, train_lib
from llm_tf.training.teacher import load_teacher
from tests.conftest import SST2_SAMPLE
from tests.training.distillation_fixtures import distillation_config, teacher_dir  # noqa: F401

#: The student takes every layer of the tiny teacher: with all tokens kept it is the teacher.
ALL_LAYERS = "task.distillation.student_init_layers=[0, 1],task.model.size=tiny,task.model.hidden_dim=0," \
             "task.model.num_layers=0,task.model.dropout=0.0"


@pytest.fixture(scope="module")
def cut_prepared(prepared_sample, tmp_path_factory) -> str:
    """The sample prepared again with the teacher's vocabulary cut to 120 tokens."""
    out = str(tmp_path_factory.mktemp("cut") / "sst2_cut")
    prepare(PrepareConfig(output_dir=out, inputs=[str(SST2_SAMPLE / "train.tsv")],
                          eval_inputs=[str(SST2_SAMPLE / "dev.tsv")], text_field="sentence",
                          vocab_file=os.path.join(prepared_sample, "tokenizer", "vocab.txt"), vocab_cut=120))
    return out


def _student(config):
    """The fresh student as the Trainer starts it: dimensions resolved, weights from the teacher."""
    tasks.task_class(config.experiment).resolve_config(config)
    task = tasks.build_task(config)
    model = task.build_model()
    return model, task.initialize_model(model)


def _kept_texts(full: TextTokenizer, cut: TextTokenizer, texts: list[str]) -> list[str]:
    kept = set(cut.vocab)
    return [t for t in texts if all(full.vocab[i] in kept for i in full.tokenize(tf.constant([t])).flat_values.numpy())]


def test_student_with_all_teacher_layers_and_kept_tokens_gives_the_teachers_logits(tmp_path, prepared_sample,
                                                                                    cut_prepared, teacher_dir):  # noqa: F811
    full = TextTokenizer.from_directory(os.path.join(prepared_sample, "tokenizer"))
    cut = TextTokenizer.from_directory(os.path.join(cut_prepared, "tokenizer"))
    with open(os.path.join(cut_prepared, "tokenizer", CUT_FILE), encoding="utf-8") as f:
        cut_info = json.load(f)
    assert cut_info["size"] == 120 and cut_info["full_size"] == len(full.vocab) and 0.5 < cut_info["coverage"] < 1.0
    assert set(cut.vocab) < set(full.vocab)

    config = distillation_config(cut_prepared, teacher_dir, ALL_LAYERS)
    student, initialized_from = _student(config)
    assert "layers [0, 1]" in initialized_from and f"120 of {len(full.vocab)}" in initialized_from
    assert config.task.model.num_layers == 2 and config.task.model.hidden_dim == 128
    teacher = load_teacher(teacher_dir).model

    texts = [line.split("\t")[0] for line in (SST2_SAMPLE / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    words = sorted({w for t in texts for w in t.split()})
    kept_words = _kept_texts(full, cut, words)
    changed = [w for w in words if w not in kept_words and w.isalpha()]
    assert len(kept_words) >= 8 and changed, "the cut keeps some of the sample's words whole and splits others"
    kept = [" ".join(kept_words[i::5][:6]) for i in range(5)]
    assert _kept_texts(full, cut, kept) == kept
    # Same tokens, same ids after the gather: the student's logits are the teacher's.
    np.testing.assert_allclose(student(cut(tf.constant(kept), seq_length=32)).numpy(),
                               teacher(full(tf.constant(kept), seq_length=32)).numpy(), atol=1e-5)
    # A word that was [UNK] stays [UNK]; a word with a cut piece is spelled in kept pieces, not [UNK].
    unknown = "Ωψ"
    assert full.tokenize(tf.constant([unknown])).flat_values.numpy().tolist() == [full.unk_id]
    assert cut.tokenize(tf.constant([unknown])).flat_values.numpy().tolist() == [cut.unk_id]
    pieces = cut.tokenize(tf.constant(changed)).flat_values.numpy()
    assert np.mean(pieces == cut.unk_id) <= np.mean(
        full.tokenize(tf.constant(changed)).flat_values.numpy() == full.unk_id)


def test_teacher_logits_across_vocabularies_and_a_trained_student_that_exports(tmp_path, prepared_sample, cut_prepared,
                                                                               teacher_dir):  # noqa: F811
    logits_dir = str(tmp_path / "logits")
    config = distillation_config(cut_prepared, teacher_dir, ALL_LAYERS)
    manifest = teacher_logits.precompute_teacher_logits(config, logits_dir)
    assert manifest["teacher_tokenizer"] == os.path.join(prepared_sample, "tokenizer")
    # The logits are the teacher's on its own tokenization of each text.
    full = TextTokenizer.from_directory(os.path.join(prepared_sample, "tokenizer"))
    teacher = load_teacher(teacher_dir).model
    records = [tf.train.Example.FromString(r.numpy()) for r in
               tf.data.TFRecordDataset(teacher_logits.logits_files(logits_dir, manifest, "eval"))]
    texts = [r.features.feature["text"].bytes_list.value[0].decode() for r in records]
    stored = np.array([r.features.feature[teacher_logits.FEATURE].float_list.value for r in records])
    np.testing.assert_allclose(stored, teacher(full(tf.constant(texts), seq_length=32)).numpy(), atol=1e-4)

    config = distillation_config(cut_prepared, teacher_dir, f"{ALL_LAYERS},task.distillation.teacher_logits_dir="
                                                            f"{logits_dir},task.distillation.alpha=1.0")
    model_dir = str(tmp_path / "student")
    result = train_lib.run_experiment(config, "train_and_eval", model_dir)
    assert result["step"] == 10 and result["student_params"] < result["teacher_params"]
    saved = model_dir_lib.load_config(model_dir).task
    assert (saved.model.num_layers, saved.model.hidden_dim, saved.distillation.student_init_layers) == (2, 128, [0, 1])
    restored = model_dir_lib.restore_trained_model(model_dir, "latest")
    assert restored.model.get_layer("encoder").vocabulary_size == 120


@pytest.mark.parametrize("override, match", [
    ("task.distillation.student_init_layers=[0, 0]", "names a layer twice"),
    ("task.distillation.student_init_layers=[5]", "layer 5 does not exist"),
    ("task.distillation.student_init_layers=[0],task.model.hidden_dim=64", "task.model.hidden_dim=64 disagrees"),
])
def test_bad_student_init_layers_are_refused(tmp_path, cut_prepared, teacher_dir, override, match):  # noqa: F811
    config = distillation_config(cut_prepared, teacher_dir,
                                 "task.model.num_layers=0,task.model.hidden_dim=0," + override)
    with pytest.raises(ConfigError, match=match):
        train_lib.run_experiment(config, "train", str(tmp_path / "student"))


def test_teacher_in_the_step_with_a_cut_vocabulary_points_at_precomputed_logits(tmp_path, cut_prepared,
                                                                                teacher_dir):  # noqa: F811
    config = distillation_config(cut_prepared, teacher_dir, ALL_LAYERS)
    with pytest.raises(ConfigError, match="precompute the teacher's logits"):
        train_lib.run_experiment(config, "train", str(tmp_path / "student"))


def test_vocab_cut_needs_a_given_wordpiece_vocabulary(tmp_path):
    with pytest.raises(ConfigError, match="--vocab_cut cuts a given WordPiece vocabulary"):
        prepare(PrepareConfig(output_dir=str(tmp_path / "x"), inputs=[str(SST2_SAMPLE / "train.tsv")],
                              text_field="sentence", vocab_cut=100))


def test_vocab_cut_below_the_always_kept_tokens_is_refused(tmp_path, prepared_sample):
    with pytest.raises(ConfigError, match="below the .* that must stay"):
        prepare(PrepareConfig(output_dir=str(tmp_path / "x"), inputs=[str(SST2_SAMPLE / "train.tsv")],
                              text_field="sentence", vocab_file=os.path.join(prepared_sample, "tokenizer", "vocab.txt"),
                              vocab_cut=10))
    assert not os.path.exists(tmp_path / "x")


def test_cut_vocabulary_keeps_order_specials_and_characters():
    from llm_tf.text.vocab_cut import row_indices, select_tokens

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "film", "a", "##a", "good", "bad", "ok", "##s", "é"]
    counts = np.array([0, 0, 0, 0, 0, 9, 5, 1, 0, 3, 2, 0, 1])
    kept = select_tokens(vocab, counts, 11)
    # 9 always kept (5 specials; the characters a, ##a, é that were used, ##s as printable ascii),
    # then the 2 most used others: film (9), bad (3); ok (2) and the unused good are cut.
    assert kept[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert kept == [t for t in vocab if t in kept], "kept tokens stay in the full vocabulary's order"
    assert set(kept) == {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a", "é", "##s", "film", "bad"}
    with pytest.raises(ConfigError, match="below the 9 that must stay"):
        select_tokens(vocab, counts, 8)
    assert row_indices(kept, vocab).tolist() == [vocab.index(t) for t in kept]
    with pytest.raises(ConfigError, match=r"1 token\(s\) not in full vocabulary, first 'zebra'"):
        row_indices(kept + ["zebra"], vocab)


def test_a_narrower_feedforward_keeps_the_teachers_most_important_units(cut_prepared, teacher_dir):  # noqa: F811
    from llm_tf.models.student_init import feedforward_units

    config = distillation_config(cut_prepared, teacher_dir, "task.distillation.student_init_layers=[-1],"
                                 "task.model.num_layers=0,task.model.hidden_dim=0,task.model.intermediate_dim=200")
    student, initialized_from = _student(config)
    assert "feed-forward units 200 of 512" in initialized_from
    teacher_layer = load_teacher(teacher_dir).model.get_layer("encoder").transformer_layers[1]
    ours = student.get_layer("encoder").transformer_layers[0]
    units = feedforward_units(teacher_layer, 200)
    inner = teacher_layer._feedforward_intermediate_dense.kernel.numpy()
    outer = teacher_layer._feedforward_output_dense.kernel.numpy()
    score = np.linalg.norm(inner, axis=0) * np.linalg.norm(outer, axis=1)
    assert len(units) == 200 and score[units].min() >= np.delete(score, units).max()
    np.testing.assert_array_equal(ours._feedforward_intermediate_dense.kernel.numpy(), inner[:, units])
    np.testing.assert_array_equal(ours._feedforward_output_dense.kernel.numpy(), outer[units])
    np.testing.assert_array_equal(ours._self_attention_layer.get_weights()[0],
                                  teacher_layer._self_attention_layer.get_weights()[0])

    too_wide = distillation_config(cut_prepared, teacher_dir, "task.distillation.student_init_layers=[0],"
                                   "task.model.num_layers=0,task.model.hidden_dim=0,task.model.intermediate_dim=1024")
    with pytest.raises(ConfigError, match="intermediate_dim=1024 exceeds the teacher's 512"):
        tasks.task_class("distillation").resolve_config(too_wide)


def test_a_savedmodel_teacher_with_another_vocabulary_is_refused_by_precompute(tmp_path, cut_prepared,
                                                                               teacher_dir):  # noqa: F811
    from llm_tf.export import exporter

    version = exporter.export_saved_model(teacher_dir, str(tmp_path / "teacher"), warmup_count=0).path
    config = distillation_config(cut_prepared, version)
    with pytest.raises(ConfigError, match="is a SavedModel whose vocabulary .* differs from the student's"):
        teacher_logits.precompute_teacher_logits(config, str(tmp_path / "logits"))
    assert not os.path.exists(tmp_path / "logits")
