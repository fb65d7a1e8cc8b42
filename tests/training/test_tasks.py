"""Tests for llm_tf/training/tasks.py (the experiment registry)."""

import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError
from llm_tf.training import configs, tasks
from tests.training.conftest import FAST


def test_registered_experiments_and_their_defaults():
    assert tasks.experiment_names() == ["causal_lm", "distillation", "mlm_pretrain", "sentence_classification",
                                      "token_classification"]
    config = tasks.experiment_config("token_classification")
    assert config.experiment == "token_classification" and config.trainer.best_metric == "entity_f1"
    assert tasks.experiment_config("sentence_classification").trainer.best_metric == "accuracy"


def test_unknown_experiment_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown experiment 'ner' \\(valid: causal_lm, distillation, mlm_pretrain, "
                                          "sentence_classification, token_classification\\)"):
        tasks.experiment_config("ner")


def test_bucket_boundaries():
    assert tasks.bucket_boundaries(64) == [4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56]
    assert tasks.bucket_boundaries(64, compiled=True) == [8, 16, 24, 32, 48]
    assert tasks.bucket_boundaries(512)[-3:] == [320, 384, 448]
    assert tasks.bucket_boundaries(64, [40, 10, 40]) == [10, 40]
    with pytest.raises(ConfigError, match="bucket_boundaries must lie in"):
        tasks.bucket_boundaries(32, [16, 32])


@pytest.mark.parametrize("autotune", [False, True])
def test_autotune_follows_the_config_on_train_and_eval_inputs(prepared_sample, autotune):
    # Off by default: the autotuner's thread delays every iterator's teardown (DataConfig).
    config = configs.apply_overrides(
        tasks.experiment_config("sentence_classification"), [],
        f"task.data.prepared_dir={prepared_sample},{FAST}" + (",task.data.autotune=true" if autotune else ""),
    )
    assert config.task.data.autotune is autotune
    task = tasks.build_task(config)
    for split, training in (("train", True), ("eval", False)):
        assert task.build_inputs(split, training=training).options().autotune.enabled is autotune


def test_a_task_whose_transform_branches_on_tensors_opts_into_autograph(prepared_sample):
    config = configs.apply_overrides(tasks.experiment_config("sentence_classification"), [],
                                     f"task.data.prepared_dir={prepared_sample},{FAST}")
    task = tasks.build_task(config)
    plain = task.example_transform()

    def branching(serialized):
        features, labels = plain(serialized)
        if tf.reduce_any(labels > 0):  # a Python `if` on a tensor: needs AutoGraph
            labels = labels * 1
        return features, labels

    with pytest.raises(tf.errors.OperatorNotAllowedInGraphError, match="as a Python `bool`"):
        task.batched_inputs("eval", False, 0, branching)
    task.autograph_transform = True
    features, labels = next(iter(task.batched_inputs("eval", False, 0, branching)))
    assert labels.shape[0] == features["token_ids"].shape[0] > 0


def test_each_experiment_has_only_its_own_task_keys():
    from llm_tf.training import causal_lm, mlm_pretrain

    assert isinstance(tasks.experiment_config("mlm_pretrain").task, mlm_pretrain.MaskedLMTaskConfig)
    assert isinstance(tasks.experiment_config("causal_lm").task, causal_lm.CausalLMTaskConfig)
    assert isinstance(tasks.experiment_config("distillation").task, configs.FineTuningTaskConfig)
    with pytest.raises(ConfigError, match="unknown config key 'mask_rate'"):
        configs.apply_overrides(tasks.experiment_config("sentence_classification"), [], "task.mask_rate=0.2")
    with pytest.raises(ConfigError, match="unknown config key 'lora_rank'"):
        configs.apply_overrides(tasks.experiment_config("mlm_pretrain"), [], "task.lora_rank=4")
    lora = configs.apply_overrides(tasks.experiment_config("token_classification"), [], "task.lora_rank=4").task.lora()
    assert lora == configs.LoraSettings(4, 0.0, ("query", "value"), 0)
    assert tasks.experiment_config("causal_lm").task.lora() is None


def test_resolve_experiment_applies_files_overrides_then_runtime_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  train_steps: 50\nruntime:\n  strategy: mirrored\n")
    config = tasks.resolve_experiment("sentence_classification", [str(path)], "trainer.steps_per_loop=25",
                                      {"strategy": "one_device", "num_devices": None, "tpu": None})
    assert (config.trainer.train_steps, config.trainer.steps_per_loop) == (50, 25)
    assert config.runtime.strategy == "one_device" and config.runtime.num_devices == 1
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        tasks.resolve_experiment("nope")


def test_a_task_must_implement_the_contract():
    class Incomplete(tasks.Task):
        def build_model(self):
            return None

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(configs.ExperimentConfig())
    hooks = tasks.Task.__dict__
    assert {"resolve_config", "initialize_model", "training_model", "parameter_report", "extra_eval"} <= set(hooks)


def test_an_empty_registry_says_how_to_fill_it(monkeypatch):
    monkeypatch.setattr(tasks, "_EXPERIMENTS", {})
    with pytest.raises(ConfigError, match="import llm_tf.training.registry_imports"):
        tasks.experiment_config("sentence_classification")
