"""Tests for llm_tf/training/teacher.py: teachers from a model_dir and from an exported SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.data.prepared import load_prepared
from llm_tf.errors import ConfigError
from llm_tf.export import exporter
from llm_tf.training import teacher as teacher_lib
from tests.conftest import CORPUS
from tests.training.distillation_fixtures import teacher_dir  # noqa: F401


def packed(prepared_dir, texts):
    data = load_prepared(prepared_dir, 32)
    return {k: tf.cast(v, tf.int32) for k, v in data.tokenizer(tf.constant(texts), seq_length=32).items()}


def test_model_dir_teacher_gives_logits_and_hidden_states(prepared_sample, teacher_dir):  # noqa: F811
    plain = teacher_lib.load_teacher(teacher_dir)
    layered = teacher_lib.load_teacher(teacher_dir, hidden_layers=[0, -1])
    inputs = packed(prepared_sample, CORPUS)
    out = layered(inputs)
    np.testing.assert_allclose(out["logits"].numpy(), plain(inputs)["logits"].numpy(), atol=1e-5)
    assert [h.shape for h in out["hidden_states"]] == [(len(CORPUS), 32, 128)] * 2
    assert not np.allclose(out["hidden_states"][0].numpy(), out["hidden_states"][1].numpy())
    info = plain.info
    assert (info.kind, info.labels, info.num_layers, info.hidden_dim) == ("model_dir", ["0", "1"], 2, 128)
    assert info.checkpoint.endswith("checkpoints/ckpt-1") and info.step == 1 and info.params > 0
    assert not plain.model.trainable_weights  # frozen
    teacher_lib.check_compatible(info, ["0", "1"], teacher_lib.vocab_path_of(prepared_sample), prepared_sample)
    with pytest.raises(ConfigError, match=r"teacher_layers: layer 2 does not exist \(the encoder has 2 layers"):
        teacher_lib.load_teacher(teacher_dir, hidden_layers=[2])


def test_saved_model_teacher_gives_the_same_logits(tmp_path, prepared_sample, teacher_dir):  # noqa: F811
    version = exporter.export_saved_model(teacher_dir, str(tmp_path / "serving"), warmup_count=0).path
    exported = teacher_lib.load_teacher(version)
    plain = teacher_lib.load_teacher(teacher_dir)
    inputs = packed(prepared_sample, CORPUS)
    np.testing.assert_allclose(exported(inputs)["logits"].numpy(), plain(inputs)["logits"].numpy(), atol=1e-4)
    info = exported.info
    assert (info.kind, info.labels, info.params) == ("saved_model", ["0", "1"], plain.info.params)
    teacher_lib.check_compatible(info, ["0", "1"], teacher_lib.vocab_path_of(prepared_sample), prepared_sample)
    with pytest.raises(ConfigError, match="is a SavedModel, which gives logits only"):
        teacher_lib.load_teacher(version, hidden_layers=[-1])
