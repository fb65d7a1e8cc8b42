"""Tests for llm_tf/training/configs.py."""

import re

import pytest
import yaml

from llm_tf.errors import ConfigError
from llm_tf.training import configs
from llm_tf.training import model_dir as model_dir_lib
from tests.conftest import REPO


def test_yaml_files_apply_in_order_then_params_override(write):
    first = write("a.yaml", "task:\n  model:\n    size: mini\ntrainer:\n  train_steps: 100\n")
    second = write("b.yaml", "trainer:\n  train_steps: 200\n  optimizer:\n    learning_rate: 0.003\n")
    config = configs.apply_overrides(configs.ExperimentConfig(), [first, second], "trainer.train_steps=300")
    assert config.task.model.size == "mini"
    assert config.trainer.optimizer.learning_rate == 0.003
    assert config.trainer.train_steps == 300


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.model.sise=mini", "--params_override: unknown config key 'sise' (did you mean: task.model.size)"),
        ("trainer.train_step=5",
         "--params_override: unknown config key 'train_step' (did you mean: trainer.train_steps"),
    ],
)
def test_unknown_keys_name_the_valid_ones(override, message):
    with pytest.raises(ConfigError) as error:
        configs.apply_overrides(configs.ExperimentConfig(), [], override)
    assert str(error.value).startswith(message)


def test_bad_files(write, tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        configs.apply_overrides(configs.ExperimentConfig(), [str(tmp_path / "none.yaml")], "")
    bad = write("bad.yaml", "task:\n  model: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{bad}:3: bad YAML"):
        configs.apply_overrides(configs.ExperimentConfig(), [bad], "")
    with pytest.raises(ConfigError, match="expected a mapping"):
        configs.apply_overrides(configs.ExperimentConfig(), [write("list.yaml", "- 1\n")], "")


def test_params_yaml_round_trips(tmp_path):
    config = configs.apply_overrides(configs.ExperimentConfig(experiment="x"), [], "task.model.size=small")
    path = model_dir_lib.save_params(config, str(tmp_path))
    again = configs.apply_overrides(configs.ExperimentConfig(), [path], "")
    assert again.as_dict() == config.as_dict()
    assert yaml.safe_load(open(path))["task"]["model"]["size"] == "small"


def test_model_sizes():
    assert configs.ModelConfig(size="tiny").dimensions() == {"num_layers": 2, "hidden_dim": 128, "num_heads": 2,
                                                             "intermediate_dim": 512}
    assert configs.ModelConfig(size="base").dimensions()["num_layers"] == 12
    assert configs.ModelConfig(size="mini", num_layers=1).dimensions()["num_layers"] == 1
    with pytest.raises(ConfigError, match="unknown model size 'huge'"):
        configs.ModelConfig(size="huge").dimensions()
    with pytest.raises(ConfigError, match="not divisible"):
        configs.ModelConfig(size="tiny", num_heads=3).dimensions()


CONFIGS = sorted((REPO / "configs").glob("*/*.yaml"))
#: DESIGN.md's named sizes: (layers, hidden, heads); the feed-forward size is 4x hidden.
DESIGN_SIZES = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8), "base": (12, 768, 12)}


def _header(path) -> str:
    return "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))


def _command(path) -> str:
    """The header's ``llm_train`` command that names this config file (empty if none does)."""
    commands = _header(path).replace("\\\n", " ").split("llm_train")[1:]
    name = str(path.relative_to(REPO))
    return next((c for c in commands if f"--config_file={name}" in c), "")


def _documented_files(path) -> list[str]:
    """The --config_file values of the header's command for this config (the file alone if none)."""
    named = re.findall(r"--config_file=(\S+)", _command(path))
    return [str(REPO / name) for name in named] if named else [str(path)]


def _experiment(path) -> str:
    """The --experiment of the header's command for this config, else the directory's name."""
    named = re.findall(r"--experiment=(\w+)", _command(path))
    return named[0] if named else path.parent.name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_shipped_config_applies_to_its_experiment(path):
    from llm_tf.training import tasks

    experiment = _experiment(path)
    assert experiment in tasks.experiment_names(), f"{path}: no experiment '{experiment}'"
    assert path.read_text().startswith("#"), "a config starts with a comment saying how to run it"
    alone = configs.apply_overrides(tasks.experiment_config(experiment), [str(path)], "")
    documented = configs.apply_overrides(tasks.experiment_config(experiment), _documented_files(path), "")
    model = documented.task.model
    # A student built from its teacher's layers takes the teacher's dimensions when it runs.
    from_teacher = bool(getattr(getattr(documented.task, "distillation", None), "student_init_layers", None))
    if not documented.task.init_preset and not from_teacher:
        dims = model.dimensions()
        layers, hidden, heads = DESIGN_SIZES[model.size]
        assert (dims["num_layers"], dims["hidden_dim"], dims["num_heads"], dims["intermediate_dim"]) == (
            layers, hidden, heads, 4 * hidden)
    size = path.stem.rsplit("_", 1)[-1]
    if size in DESIGN_SIZES:
        assert alone.task.model.size == documented.task.model.size == size
    assert documented.trainer.train_steps % documented.trainer.steps_per_loop == 0
    assert documented.trainer.optimizer.learning_rate > 0


def test_every_experiment_and_size_has_a_config_with_smaller_steps_for_bigger_sizes():
    from llm_tf.training import tasks

    for experiment in ("sentence_classification", "token_classification", "mlm_pretrain"):
        rates = []
        for size in DESIGN_SIZES:
            found = [p for p in CONFIGS if p.parent.name == experiment and p.stem.endswith(f"_{size}")
                     and not p.stem.startswith("sample")]
            assert found, f"no configs/{experiment}/*_{size}.yaml"
            config = configs.apply_overrides(tasks.experiment_config(experiment), _documented_files(found[0]), "")
            rates.append(config.trainer.optimizer.learning_rate)
        assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1], f"{experiment}: learning rates {rates}"


def test_small_and_base_configs_have_the_design_dimensions():
    small = configs.ModelConfig(size="small").dimensions()
    base = configs.ModelConfig(size="base").dimensions()
    assert (small["num_layers"], small["hidden_dim"], small["num_heads"]) == (4, 512, 8)
    assert (base["num_layers"], base["hidden_dim"], base["num_heads"]) == (12, 768, 12)


def test_the_preset_example_config_fine_tunes_from_a_local_preset():
    from llm_tf.training import tasks

    path = REPO / "configs" / "sentence_classification" / "sst2_from_preset.yaml"
    config = configs.apply_overrides(tasks.experiment_config("sentence_classification"), [str(path)], "")
    assert config.task.init_preset == "presets/bert_tiny_en_uncased" and "://" not in config.task.init_preset
    assert "llm_prepare" in path.read_text() and "--preset=presets/bert_tiny_en_uncased" in path.read_text()
