"""Tests for llm_tf/training/model_garden_keys.py: Model Garden's config keys read as ours."""

import logging

import pytest
import yaml

from llm_tf.errors import ConfigError
from llm_tf.training import configs, model_garden_keys, model_garden_optimizer, model_garden_values, tasks
from llm_tf.training import model_dir as model_dir_lib
from tests.conftest import REPO

MODEL_GARDEN_YAML = REPO / "configs" / "sentence_classification" / "model_garden_style.yaml"


def _config(files=(), override="", experiment="sentence_classification"):
    return configs.apply_overrides(tasks.experiment_config(experiment), list(files), override)


def _nested(dotted: str, value) -> dict:
    nested = value
    for part in reversed(dotted.split(".")):
        nested = {part: nested}
    return nested


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def _notes(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Model Garden" in r.getMessage()]


# (Model Garden key, its value, our key, our value)
ALIASES = [
    ("runtime.distribution_strategy", "mirrored", "runtime.strategy", "mirrored"),
    ("runtime.distribution_strategy", "multi_worker_mirrored", "runtime.strategy", "multi_worker_mirrored"),
    ("runtime.distribution_strategy", "tpu", "runtime.strategy", "tpu"),
    ("runtime.distribution_strategy", "off", "runtime.strategy", "one_device"),
    ("runtime.num_gpus", 4, "runtime.num_devices", 4),
    ("runtime.num_gpus", 0, "runtime.num_devices", 1),
    ("runtime.mixed_precision_dtype", "bfloat16", "trainer.mixed_precision", "mixed_bfloat16"),
    ("runtime.mixed_precision_dtype", "float16", "trainer.mixed_precision", "mixed_float16"),
    ("runtime.mixed_precision_dtype", "float32", "trainer.mixed_precision", ""),
    ("runtime.enable_xla", True, "trainer.jit_compile", True),
    ("trainer.validation_steps", -1, "trainer.eval_steps", 0),
    ("trainer.validation_steps", 25, "trainer.eval_steps", 25),
    ("trainer.best_checkpoint_eval_metric", "cls_accuracy", "trainer.best_metric", "accuracy"),
    ("trainer.best_checkpoint_eval_metric", "validation_loss", "trainer.best_metric", "loss"),
    ("trainer.best_checkpoint_eval_metric", "entity_f1", "trainer.best_metric", "entity_f1"),
    ("task.train_data.global_batch_size", 16, "task.data.global_batch_size", 16),
    ("task.train_data.seq_length", 96, "task.data.seq_length", 96),
    ("task.train_data.shuffle_buffer_size", 500, "task.data.shuffle_buffer", 500),
    ("task.train_data.seed", 7, "task.data.seed", 7),
    ("task.validation_data.global_batch_size", 256, "task.data.eval_batch_size", 256),
    ("task.model.encoder.bert.num_layers", 3, "task.model.num_layers", 3),
    ("task.model.encoder.bert.hidden_size", 192, "task.model.hidden_dim", 192),
    ("task.model.encoder.bert.num_attention_heads", 3, "task.model.num_heads", 3),
    ("task.model.encoder.bert.intermediate_size", 768, "task.model.intermediate_dim", 768),
    ("task.model.encoder.bert.dropout_rate", 0.2, "task.model.dropout", 0.2),
    ("task.model.encoder.bert.max_position_embeddings", 256, "task.model.max_sequence_length", 256),
    ("trainer.optimizer_config.optimizer.adamw.weight_decay_rate", 0.05, "trainer.optimizer.weight_decay", 0.05),
    ("trainer.optimizer_config.optimizer.adamw.beta_1", 0.8, "trainer.optimizer.beta_1", 0.8),
    ("trainer.optimizer_config.optimizer.adamw.beta_2", 0.98, "trainer.optimizer.beta_2", 0.98),
    ("trainer.optimizer_config.optimizer.adamw.epsilon", 1e-8, "trainer.optimizer.epsilon", 1e-8),
    ("trainer.optimizer_config.optimizer.adamw.global_clipnorm", 5.0, "trainer.optimizer.clipnorm", 5.0),
    ("trainer.optimizer_config.optimizer.adamw.gradient_clip_norm", 0.5, "trainer.optimizer.clipnorm", 0.5),
    ("trainer.optimizer_config.optimizer.type", "adam", "trainer.optimizer.weight_decay", 0.0),
    ("trainer.optimizer_config.learning_rate.polynomial.initial_learning_rate", 3e-5,
     "trainer.optimizer.learning_rate", 3e-5),
    ("trainer.optimizer_config.learning_rate.polynomial.end_learning_rate", 1e-6,
     "trainer.optimizer.end_learning_rate", 1e-6),
    ("trainer.optimizer_config.learning_rate.polynomial.power", 2.0, "trainer.optimizer.power", 2.0),
    ("trainer.optimizer_config.learning_rate.type", "constant", "trainer.optimizer.decay", "constant"),
    ("trainer.optimizer_config.warmup.linear.warmup_steps", 500, "trainer.optimizer.warmup_fraction", 0.25),
    ("trainer.optimizer_config.warmup.polynomial.warmup_steps", 200, "trainer.optimizer.warmup_fraction", 0.1),
]


@pytest.mark.parametrize("how", ["yaml", "params_override", "dict"])
@pytest.mark.parametrize("theirs, value, ours, expected", ALIASES, ids=[f"{a[0]}={a[1]}" for a in ALIASES])
def test_each_alias_sets_our_key(theirs, value, ours, expected, how, write):
    # sentence_classification trains 2000 steps by default: warm-up steps are read as a fraction of them.
    if how == "yaml":
        config = _config([write("mg.yaml", yaml.safe_dump(_nested(theirs, value)))])
    elif how == "params_override":
        config = _config(override=f"{theirs}={str(value).lower() if isinstance(value, bool) else value}")
    else:
        config = _config(override=_nested(theirs, value))
    assert _get(config, ours) == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_polynomial_schedule_maps_to_our_decay():
    base = "trainer.optimizer_config.learning_rate"
    linear = _config(override=f"{base}.type=polynomial,{base}.polynomial.power=1.0,"
                              f"{base}.polynomial.decay_steps=2000").trainer.optimizer
    assert (linear.decay, linear.power) == ("linear", 1.0)
    curved = _config(override=f"{base}.type=polynomial,{base}.polynomial.power=2.0").trainer.optimizer
    assert (curved.decay, curved.power) == ("polynomial", 2.0)
    constant = _config(override=f"{base}.type=constant,{base}.constant.learning_rate=0.002").trainer.optimizer
    assert (constant.decay, constant.learning_rate) == ("constant", 0.002)


def test_warmup_and_decay_steps_are_read_against_the_train_steps_of_that_source():
    mg = "trainer.optimizer_config"
    same_source = _config(override=f"trainer.train_steps=36813,{mg}.warmup.type=linear,"
                                   f"{mg}.warmup.linear.warmup_steps=3681,"
                                   f"{mg}.learning_rate.polynomial.decay_steps=36813")
    fraction = same_source.trainer.optimizer.warmup_fraction
    assert int(fraction * 36813) == 3681 and fraction == 0.1  # the shortest fraction our schedule reads as 3681
    for total in (7, 97, 1000, 36813, 100003):
        for steps in range(0, total, max(1, total // 37)):
            assert int(model_garden_optimizer.warmup_fraction(steps, total) * total) == steps
    with pytest.raises(ConfigError, match=r"decay_steps=5000 differs from trainer.train_steps=2000"):
        _config(override=f"{mg}.learning_rate.polynomial.decay_steps=5000")
    with pytest.raises(ConfigError, match=r"warmup_steps=2000 must be less than trainer.train_steps=2000"):
        _config(override=f"{mg}.warmup.linear.warmup_steps=2000")


def test_a_later_train_steps_override_scales_warmup_and_decay():
    config = _config([str(MODEL_GARDEN_YAML)], "trainer.train_steps=100,trainer.steps_per_loop=50")
    assert config.trainer.train_steps == 100 and config.trainer.optimizer.warmup_fraction == 0.1


@pytest.mark.parametrize(
    "override, message",
    [
        ("runtime.distribution_strategy=parameter_server",
         "runtime.distribution_strategy: unknown strategy 'parameter_server' (expected one of: one_device, off, "
         "mirrored, multi_worker_mirrored, tpu) (parameter servers are not supported"),
        ("runtime.num_gpus=-1", "runtime.num_gpus: expected an integer >= 0, got -1"),
        ("runtime.mixed_precision_dtype=int8", "runtime.mixed_precision_dtype: unknown dtype 'int8'"),
        ("trainer.validation_steps=0", "trainer.validation_steps: expected -1 (the whole eval split)"),
        ("trainer.optimizer_config.optimizer.type=lamb",
         "trainer.optimizer_config.optimizer.type: 'lamb' has no equivalent here (expected one of: adamw, adam)"),
        ("trainer.optimizer_config.optimizer.sgd.momentum=0.9",
         "trainer.optimizer_config.optimizer.type: 'sgd' has no equivalent here"),
        ("trainer.optimizer_config.optimizer.adamw.clipnorm=1.0",
         "trainer.optimizer_config.optimizer.adamw.clipnorm: only None is supported here, got 1.0 (clipnorm clips "
         "each variable's gradient on its own; ours clips the global norm: use global_clipnorm)"),
        ("trainer.optimizer_config.optimizer.adamw.include_in_weight_decay=[dense]",
         "include_in_weight_decay: only None is supported here"),
        ("trainer.optimizer_config.optimizer.adamw.amsgrad=true", "amsgrad: only False is supported here"),
        ("trainer.optimizer_config.learning_rate.type=cosine",
         "trainer.optimizer_config.learning_rate.type: 'cosine' has no equivalent here "
         "(expected one of: polynomial, constant)"),
        ("trainer.optimizer_config.learning_rate.polynomial.cycle=true", "cycle: only False is supported here"),
        ("trainer.optimizer_config.warmup.linear.warmup_learning_rate=0.001",
         "warmup_learning_rate: only 0 is supported here, got 0.001 (warm-up starts from a learning rate of 0)"),
        ("trainer.optimizer_config.warmup.polynomial.power=2", "power: only 1 is supported here, got 2"),
        ("trainer.optimizer_config.ema.average_decay=0.99", "trainer.optimizer_config.ema: no moving average"),
        ("task.model.encoder.type=albert", "task.model.encoder.type: only 'bert' is supported, got 'albert'"),
        ("task.model.encoder.bert.hidden_activation=relu", "hidden_activation: only 'gelu' is supported"),
        ("task.metric_type=matthews_corrcoef", "task.metric_type: only 'accuracy' is supported"),
        ("task.hub_module_url=https://tfhub.dev/x", "TF Hub modules are not loaded here"),
        ("task.train_data.label_type=float", "label_type: only 'int' is supported"),
    ],
)
def test_model_garden_values_with_no_equivalent_are_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        _config(override=override)
    assert str(error.value).startswith("--params_override: ") and message in str(error.value)


def test_unknown_keys_in_model_garden_sections_name_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown Model Garden config key 'task.train_data.input_pth' "
                                          r"\(did you mean: input_path\)"):
        _config(override="task.train_data.input_pth=x")
    with pytest.raises(ConfigError, match=r"'trainer.optimizer_config.optimiser' \(did you mean: optimizer\)"):
        _config(override="trainer.optimizer_config.optimiser.type=adamw")
    with pytest.raises(ConfigError, match=r"'trainer.optimizer_config.learning_rate.polynomial.decay_step' "
                                          r"\(did you mean: decay_steps\)"):
        _config(override="trainer.optimizer_config.learning_rate.polynomial.decay_step=10")
    # Outside a Model Garden section an unknown key is ours to report, with the closest keys of both.
    with pytest.raises(ConfigError, match=r"unknown config key 'num_gpu' \(did you mean: runtime.num_gpus\)"):
        _config(override="runtime.num_gpu=2")
    with pytest.raises(ConfigError, match=r"unknown config key 'validation_step' \(did you mean: "
                                          r"trainer.validation_steps, trainer.eval_steps"):
        _config(override="trainer.validation_step=2")


@pytest.mark.parametrize(
    "text, message",
    [
        ("runtime:\n  strategy: one_device\n  distribution_strategy: mirrored\n",
         "runtime.distribution_strategy='mirrored' and runtime.strategy='one_device' both set runtime.strategy"),
        ("task:\n  train_data: {seq_length: 64}\n  validation_data: {seq_length: 128}\n",
         "task.validation_data.seq_length=128 and task.train_data.seq_length=64 both set task.data.seq_length"),
        ("trainer:\n  optimizer: {clipnorm: 1.0}\n  optimizer_config:\n    optimizer:\n"
         "      adamw: {global_clipnorm: 2.0}\n",
         "global_clipnorm=2.0 and trainer.optimizer.clipnorm=1.0 both set trainer.optimizer.clipnorm"),
        ("trainer:\n  optimizer: {weight_decay: 0.01}\n  optimizer_config: {optimizer: {type: adam}}\n",
         "trainer.optimizer_config.optimizer.type='adam' and trainer.optimizer.weight_decay=0.01 both set"),
        ("runtime: {mixed_precision_dtype: bfloat16}\ntrainer: {mixed_precision: mixed_float16}\n",
         "runtime.mixed_precision_dtype='bfloat16' and trainer.mixed_precision='mixed_float16' both set"),
    ],
)
def test_a_key_given_both_ways_differently_is_an_error_naming_both(text, message, write):
    path = write("both.yaml", text)
    with pytest.raises(ConfigError) as error:
        _config([path])
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_a_key_given_both_ways_alike_or_in_different_sources_is_fine(write):
    alike = write("alike.yaml", "runtime:\n  strategy: mirrored\n  distribution_strategy: mirrored\n"
                                "trainer:\n  eval_steps: 0\n  validation_steps: -1\n")
    assert _config([alike]).runtime.strategy == "mirrored"
    with pytest.raises(ConfigError, match="both set runtime.strategy"):
        _config(override="runtime.strategy=one_device,runtime.distribution_strategy=mirrored")
    # Later sources win, as for any key.
    later = _config([write("mg.yaml", "runtime: {distribution_strategy: mirrored}\n")], "runtime.strategy=one_device")
    assert later.runtime.strategy == "one_device"
    again = _config([write("ours.yaml", "runtime: {strategy: one_device}\n")], "runtime.distribution_strategy=tpu")
    assert again.runtime.strategy == "tpu"


def test_ignored_keys_are_listed_in_one_warning(write, caplog):
    first = write("a.yaml", "trainer:\n  summary_interval: 100\n  checkpoint_interval: 100\n")
    second = write("b.yaml", "runtime:\n  per_gpu_thread_count: 2\n")
    with caplog.at_level(logging.WARNING):
        config = _config([first, second], "task.train_data.input_path=gs://bucket/train*,task.train_data.seq_length=32")
    assert config.task.data.seq_length == 32
    notes = _notes(caplog)
    assert notes == [
        "ignored 4 Model Garden config key(s) with no equivalent here (docs/configs.md says why): "
        f"{first}: trainer.summary_interval, trainer.checkpoint_interval; {second}: runtime.per_gpu_thread_count; "
        "--params_override: task.train_data.input_path"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _config(override="trainer.train_steps=10,trainer.steps_per_loop=5")
    assert _notes(caplog) == []


def test_our_keys_are_never_translated(write):
    # trainer.max_to_keep, train_steps, steps_per_loop, runtime.tpu, task.init_checkpoint: the same in both.
    text = "task: {init_checkpoint: runs/x}\ntrainer: {max_to_keep: 2, train_steps: 10, steps_per_loop: 5}\n"
    config = _config([write("same.yaml", text)], "runtime.tpu=local")
    assert (config.task.init_checkpoint, config.trainer.max_to_keep, config.runtime.tpu) == ("runs/x", 2, "local")
    values = {"trainer": {"optimizer_config": {"optimizer": {"type": "adam"}}}}
    model_garden_keys.translate(values, configs.ExperimentConfig(), "x")
    assert values == {"trainer": {"optimizer_config": {"optimizer": {"type": "adam"}}}}  # not modified


def test_the_model_garden_style_config_trains_what_sst2_tiny_trains(caplog):
    assert MODEL_GARDEN_YAML.read_text().startswith("#")
    with caplog.at_level(logging.WARNING):
        config = _config([str(MODEL_GARDEN_YAML)], "task.data.prepared_dir=prepared/sst2")
    tiny = _config([str(REPO / "configs" / "sentence_classification" / "sst2_tiny.yaml")])
    assert config.task.model.dimensions() == tiny.task.model.dimensions() == {
        "num_layers": 2, "hidden_dim": 128, "num_heads": 2, "intermediate_dim": 512}
    ours, theirs = config.as_dict(), tiny.as_dict()
    for values in (ours, theirs):
        values["task"]["model"].update(num_layers=0, hidden_dim=0, num_heads=0, intermediate_dim=0)
    assert ours == theirs
    assert (config.task.data.seq_length, config.task.data.global_batch_size, config.task.data.eval_batch_size) == (
        64, 32, 128)
    trainer = config.trainer
    assert (trainer.eval_steps, trainer.best_metric, trainer.mixed_precision) == (0, "accuracy", "")
    assert (config.runtime.strategy, config.runtime.num_devices) == ("one_device", 1)
    optimizer = config.trainer.optimizer
    assert (optimizer.learning_rate, optimizer.warmup_fraction, optimizer.decay, optimizer.weight_decay,
            optimizer.epsilon, optimizer.clipnorm) == (5e-4, 0.1, "linear", 0.01, 1e-6, 1.0)
    ignored = [
        "task.model.num_classes", "task.model.encoder.bert.attention_dropout_rate",
        "task.model.encoder.bert.initializer_range", "task.model.encoder.bert.vocab_size",
        "task.train_data.drop_remainder", "task.train_data.input_path", "task.train_data.is_training",
        "task.validation_data.drop_remainder", "task.validation_data.input_path", "task.validation_data.is_training",
        "trainer.checkpoint_interval", "trainer.optimizer_config.optimizer.adamw.exclude_from_weight_decay",
        "trainer.summary_interval", "trainer.validation_interval", "trainer.best_checkpoint_export_subdir",
        "trainer.best_checkpoint_metric_comp",
    ]
    assert _notes(caplog) == [
        f"ignored {len(ignored)} Model Garden config key(s) with no equivalent here (docs/configs.md says why): "
        f"{MODEL_GARDEN_YAML}: {', '.join(ignored)}"
    ]


def test_the_model_garden_style_config_resolves_as_llm_train_does():
    config = tasks.resolve_experiment("sentence_classification", [str(MODEL_GARDEN_YAML)],
                                      "task.data.prepared_dir=prepared/sst2,runtime.num_gpus=2,"
                                      "runtime.distribution_strategy=mirrored",
                                      runtime={"strategy": None, "num_devices": None})
    assert (config.runtime.strategy, config.runtime.num_devices) == ("mirrored", 2)


def _leaf_keys(values: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in values.items():
        keys |= _leaf_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
    return keys


def test_params_yaml_holds_our_keys_only_and_round_trips(tmp_path, caplog):
    config = _config([str(MODEL_GARDEN_YAML)], "task.data.prepared_dir=prepared/sst2,runtime.num_gpus=0")
    path = model_dir_lib.save_params(config, str(tmp_path))
    written = yaml.safe_load(open(path))
    assert _leaf_keys(written) == _leaf_keys(tasks.experiment_config("sentence_classification").as_dict())
    text = open(path).read()
    for theirs in ("optimizer_config", "distribution_strategy", "num_gpus", "train_data", "validation_steps",
                   "mixed_precision_dtype", "best_checkpoint", "encoder"):
        assert theirs not in text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = configs.apply_overrides(tasks.experiment_config("sentence_classification"), [path], "")
    assert again.as_dict() == config.as_dict() and _notes(caplog) == []
    loaded = model_dir_lib.load_config(str(tmp_path))
    assert loaded.as_dict() == config.as_dict()


def test_the_strategy_and_precision_values_are_ours():
    from llm_tf.training import optimizers, strategies

    assert set(model_garden_values.STRATEGIES.values()) <= set(strategies.STRATEGIES)
    assert set(model_garden_values.MIXED_PRECISION.values()) <= {"", "mixed_bfloat16", "mixed_float16"}
    assert {"linear", "polynomial", "constant"} == set(optimizers.DECAYS)


def test_one_ofs_read_the_selected_type_only(caplog):
    config = _config(override={"trainer": {"optimizer_config": {
        "optimizer": {"adam": {"beta_1": 0.8}, "adamw": None},
        "learning_rate": {"constant": None, "polynomial": {"initial_learning_rate": 0.002}}}}})
    optimizer = config.trainer.optimizer
    assert (optimizer.beta_1, optimizer.learning_rate, optimizer.decay, optimizer.weight_decay) == (
        0.8, 0.002, "linear", 0.01)  # no type given: the type's own effects (Adam: no decay) are not applied
    with caplog.at_level(logging.WARNING):
        config = _config(override={"trainer": {"optimizer_config": {
            "optimizer": {"type": "adamw", "adamw": {"epsilon": 1e-8}, "lamb": {"weight_decay_rate": 0.5}}}}})
    assert config.trainer.optimizer.epsilon == pytest.approx(1e-8) and config.trainer.optimizer.weight_decay == 0.01
    assert _notes(caplog)[0].endswith("flags: trainer.optimizer_config.optimizer.lamb")
    with pytest.raises(ConfigError, match=r"fields of several types \(adam, adamw\) and no "
                                          r"trainer.optimizer_config.optimizer.type"):
        _config(override="trainer.optimizer_config.optimizer.adam.beta_1=0.8,"
                         "trainer.optimizer_config.optimizer.adamw.beta_1=0.8")
    with pytest.raises(ConfigError, match=r"'trainer.optimizer_config.optimizer.adam.weight_decay_rate' "
                                          r"\(known there: .*beta_1"):
        _config(override="trainer.optimizer_config.optimizer.type=adam,"
                         "trainer.optimizer_config.optimizer.adam.weight_decay_rate=0.1")
