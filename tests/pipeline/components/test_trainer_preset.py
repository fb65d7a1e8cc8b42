"""The Trainer's cache key covers the weights of the checkpoint ``task.init_preset`` names."""

import importlib.util
import shutil

import pytest

from llm_tf.models import named_presets, presets
from llm_tf.pipeline.components import ExampleGen, Trainer, Transform
from tests.conftest import SST2_SAMPLE
from tests.preset_fixtures import save_hf_bert_directory

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "fine", "film"]


def _trainer(preset: str) -> Trainer:
    examples = ExampleGen(inputs=[str(SST2_SAMPLE / "train.tsv")], text_field="sentence", vocab_size=100)
    transform = Transform(examples.output("examples"))
    return Trainer(examples.output("examples"), transform.output("transform_graph"), "sentence_classification",
                   params_override={"task": {"init_preset": preset}})


def test_replaced_weights_change_the_key_and_the_same_weights_keep_it(tmp_path):
    directory = save_hf_bert_directory(str(tmp_path / "bert"), VOCAB, seed=1)
    before = _trainer(directory).extra_fingerprint()
    assert before["task.init_preset"] == presets.weights_fingerprint(directory)
    assert _trainer(directory).extra_fingerprint() == before
    shutil.copy(save_hf_bert_directory(str(tmp_path / "other"), VOCAB, seed=2) + "/model.safetensors", directory)
    assert _trainer(directory).extra_fingerprint()["task.init_preset"] != before["task.init_preset"]


def test_without_a_checkpoint_only_the_config_files_count():
    examples = ExampleGen(inputs=[str(SST2_SAMPLE / "train.tsv")], text_field="sentence", vocab_size=100)
    trainer = Trainer(examples.output("examples"), Transform(examples.output("examples")).output("transform_graph"),
                      "sentence_classification")
    assert trainer.extra_fingerprint() == {}


def test_a_named_preset_counts_by_its_recorded_hash():
    if importlib.util.find_spec(named_presets.ALL_MINILM_L6_V2.module) is None:
        pytest.skip(f"all_minilm_l6_v2 not installed ({named_presets.ALL_MINILM_L6_V2.pip_command})")
    assert _trainer("all_minilm_l6_v2").extra_fingerprint()["task.init_preset"] == named_presets.ALL_MINILM_L6_V2.sha256
