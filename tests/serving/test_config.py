"""Tests for llm_tf/serving/config.py and config_files.py: models.config, batching parameters, monitoring config."""

import os

import pytest

from llm_tf.errors import ConfigError
from llm_tf.serving import config_files
from llm_tf.serving.config import BatchingSpec, ModelSpec, MonitoringSpec

# A config as TF Serving's documentation writes them: three policies, labels.
TF_SERVING_STYLE = """\
model_config_list {
  config {
    name: 'sst2'
    base_path: '/models/sst2'
    model_platform: 'tensorflow'
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: 'stable' value: 1 }
    version_labels { key: 'canary' value: 2 }
  }
  config {
    name: 'conll-ner'
    base_path: 'gs://bucket/ner'
    model_platform: 'tensorflow'
    model_version_policy { all {} }
  }
  config {
    name: 'imdb.v2'
    base_path: 'relative/imdb'
    model_platform: 'tensorflow'
  }
}
"""


def test_tf_serving_style_model_config_loads(write):
    specs = config_files.load_model_config(write("models.config", TF_SERVING_STYLE))
    assert specs == [
        ModelSpec("sst2", "/models/sst2", "specific", 1, (1, 2), {"stable": 1, "canary": 2}),
        ModelSpec("conll-ner", "gs://bucket/ner", "all"),
        # No policy: TF Serving serves the latest version; the relative path is kept as given.
        ModelSpec("imdb.v2", "relative/imdb", "latest", 1),
    ]


@pytest.mark.parametrize("spec", [
    ModelSpec("a", "/m/a"),
    ModelSpec("b", "/m/b", "latest", num_versions=3, version_labels={"stable": 4}),
    ModelSpec("c", "/m/c", "all"),
    ModelSpec("d", "/m/d", "specific", versions=(3, 1), version_labels={"stable": 1, "canary": 3}),
])
def test_model_config_round_trips(tmp_path, spec):
    path = str(tmp_path / "models.config")
    config_files.write_model_config(path, [spec])
    assert config_files.load_model_config(path) == [spec]
    assert 'model_platform: "tensorflow"' in open(path).read()


def test_latest_without_num_versions_means_one(write):
    text = "model_config_list { config { name: 'a' base_path: '/a' model_platform: 'tensorflow' " \
           "model_version_policy { latest {} } } }"
    assert config_files.load_model_config(write("m.config", text))[0].num_versions == 1


@pytest.mark.parametrize("text, message", [
    ("model_config_list {\n  config {\n    nam: 'a'\n  }\n}\n",
     ':3:5: not a valid ModelServerConfig text proto: '
     'Message type "tensorflow.serving.ModelConfig" has no field named "nam".'),
    ("model_config_list {\n config { name: 'a' base_path: '/a' model_platform: 'tensorflow' }\n"
     " config { name: 'a' base_path: '/b' model_platform: 'tensorflow' }\n}\n",
     ":3: model 'a': name: listed more than once"),
    ("model_config_list {\n config {\n  name: 'a b'\n  base_path: '/a'\n  model_platform: 'tensorflow'\n }\n}\n",
     ":3: model 'a b': name: must be non-empty and use only letters, digits, '_', '.' and '-'"),
    ("model_config_list {\n config {\n  name: 'a'\n  model_platform: 'tensorflow'\n }\n}\n",
     ":3: model 'a': base_path: must not be empty"),
    ("model_config_list {\n config {\n  name: 'a'\n  base_path: '/a'\n  model_platform: 'tensorflow'\n"
     "  model_version_policy { specific { versions: 1 } }\n  version_labels { key: 'canary' value: 2 }\n }\n}\n",
     ":3: model 'a': version_labels: label 'canary' points at version 2, which the specific policy does not serve "
     "(versions: 1)"),
    ("model_config_list {\n config { name: 'a' base_path: '/a' model_platform: 'tensorflow' "
     "model_version_policy { specific {} } }\n}\n",
     ":2: model 'a': versions: the specific policy needs at least one version"),
    ("model_config_list { config { name: 'a' base_path: '/a' } }",
     ":1: model 'a': model_platform: missing"),
    ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'tflite' } }",
     ":1: model 'a': model_platform: 'tflite' is not supported"),
    ("custom_model_config { }", ": expected a model_config_list, found custom_model_config"),
    ("", ": expected a model_config_list, found nothing"),
])
def test_bad_model_configs_name_file_line_model_and_field(write, text, message):
    path = write("models.config", text)
    with pytest.raises(ConfigError) as e:
        config_files.load_model_config(path)
    assert str(e.value).startswith(path + message), str(e.value)


def test_model_config_read_errors(tmp_path, write):
    with pytest.raises(ConfigError, match=r"/nope\.config: no such file$"):
        config_files.load_model_config(str(tmp_path / "nope.config"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        config_files.load_model_config(write("bin.config", b"\xff\xfe"))


@pytest.mark.parametrize("spec, message", [
    (ModelSpec("a", "/a", num_versions=0), "model 'a': num_versions: must be >= 1, got 0"),
    (ModelSpec("a", "/a", "newest"), "model 'a': version_policy: 'newest' is not one of latest, all, specific"),
    (ModelSpec("a", "/a", "specific", versions=(1, 1)), "model 'a': versions: 1, 1 repeats a version"),
    (ModelSpec("a", "/a", version_labels={"2": 2}), "model 'a': version_labels: label '2' is a number"),
    (ModelSpec("a", "/a", version_labels={"a/b": 2}), "model 'a': version_labels: label 'a/b' must be non-empty"),
    (ModelSpec("", "/a"), "model '': name: must be non-empty"),
])
def test_invalid_specs_are_not_written(tmp_path, spec, message):
    path = tmp_path / "models.config"
    with pytest.raises(ConfigError) as e:
        config_files.write_model_config(str(path), [spec])
    assert str(e.value).startswith(f"{path}: {message}"), str(e.value)
    assert not path.exists()


def test_batching_round_trips_and_every_field_is_written(tmp_path):
    path = str(tmp_path / "batching_parameters.txt")
    spec = BatchingSpec(max_batch_size=16, batch_timeout_micros=0, allowed_batch_sizes=(4, 16), num_batch_threads=3,
                        max_enqueued_batches=7, pad_variable_length_inputs=True)
    config_files.write_batching_parameters(path, spec)
    assert config_files.load_batching_parameters(path) == spec
    text = open(path).read()
    assert "batch_timeout_micros {\n  value: 0\n}" in text  # explicit, not TF Serving's default


def test_batching_fields_left_out_take_tf_serving_defaults(write):
    spec = config_files.load_batching_parameters(write("b.txt", "max_batch_size { value: 8 }\n"))
    assert spec == BatchingSpec(max_batch_size=8, batch_timeout_micros=0, num_batch_threads=os.cpu_count(),
                                max_enqueued_batches=10)


def test_batching_splitting_fields_are_accepted_and_ignored(write):
    text = "max_batch_size { value: 8 }\nenable_large_batch_splitting { value: true }\n" \
           "max_execution_batch_size { value: 4 }\nthread_pool_name { value: 'x' }\n"
    assert config_files.load_batching_parameters(write("b.txt", text)).max_batch_size == 8


@pytest.mark.parametrize("text, message", [
    ("max_batch_size { value: 16 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 32\n",
     ":3: allowed_batch_sizes: last entry must equal max_batch_size; last entry was 32; expected 16"),
    ("max_batch_size { value: 16 }\nallowed_batch_sizes: [8, 4, 16]\n",
     ":2: allowed_batch_sizes: entries must be increasing; 4 follows 8"),
    ("max_batch_size { value: 8 }\nallowed_batch_sizes: [0, 8]\n",
     ":2: allowed_batch_sizes: entries must be >= 1, got 0"),
    ("\nmax_batch_size { value: 0 }\n", ":2: max_batch_size: must be >= 1, got 0"),
    ("num_batch_threads { value: 0 }\n", ":1: num_batch_threads: must be >= 1, got 0"),
    ("batch_timeout_micros { value: -1 }\n", ":1: batch_timeout_micros: must be >= 0, got -1"),
    ("max_batch_size: 8\n", ":1:17: not a valid BatchingParameters text proto: "),
])
def test_bad_batching_files_name_file_line_and_field(write, text, message):
    path = write("batching_parameters.txt", text)
    with pytest.raises(ConfigError) as e:
        config_files.load_batching_parameters(path)
    assert str(e.value).startswith(path + message), str(e.value)


def test_monitoring_round_trips_and_defaults(tmp_path, write):
    path = str(tmp_path / "monitoring.config")
    config_files.write_monitoring_config(path, MonitoringSpec(path="/metrics"))
    assert config_files.load_monitoring_config(path) == MonitoringSpec(True, "/metrics")
    # No prometheus_config: metrics off, as in TF Serving; no path: TF Serving's default path.
    assert config_files.load_monitoring_config(write("off.config", "")) == MonitoringSpec(False)
    assert (config_files.load_monitoring_config(write("on.config", "prometheus_config { enable: true }"))
            == MonitoringSpec())


def test_bad_monitoring_path_is_refused(write, tmp_path):
    path = write("monitoring.config", "prometheus_config {\n  enable: true\n  path: 'metrics'\n}\n")
    with pytest.raises(ConfigError) as e:
        config_files.load_monitoring_config(path)
    assert str(e.value) == f"{path}:3: prometheus_config.path: 'metrics' must start with '/' and contain no spaces"
    with pytest.raises(ConfigError, match="must start with '/'"):
        config_files.write_monitoring_config(str(tmp_path / "m.config"), MonitoringSpec(path="/a b"))


def test_write_serving_configs_writes_three_loadable_files(tmp_path):
    specs = [ModelSpec("sst2", "/models/sst2", version_labels={"stable": 1})]
    out = tmp_path / "new" / "serving"
    paths = config_files.write_serving_configs(str(out), specs, BatchingSpec(), MonitoringSpec())
    assert paths == {
        "model_config_file": str(out / "models.config"),
        "batching_parameters_file": str(out / "batching_parameters.txt"),
        "monitoring_config_file": str(out / "monitoring.config"),
    }
    assert config_files.load_model_config(paths["model_config_file"]) == specs
    assert config_files.load_batching_parameters(paths["batching_parameters_file"]) == BatchingSpec()
    assert config_files.load_monitoring_config(paths["monitoring_config_file"]) == MonitoringSpec()
    assert sorted(os.listdir(out)) == ["batching_parameters.txt", "models.config", "monitoring.config"]  # no temp files


def test_write_serving_configs_writes_nothing_when_anything_is_invalid(tmp_path):
    out = tmp_path / "serving"
    with pytest.raises(ConfigError, match=r"batching_parameters\.txt: allowed_batch_sizes: last entry"):
        config_files.write_serving_configs(str(out), [ModelSpec("a", "/a")], BatchingSpec(allowed_batch_sizes=(8,)))
    assert not out.exists()
    paths = config_files.write_serving_configs(str(out), [ModelSpec("a", "/a")])
    assert list(paths) == ["model_config_file"] and os.listdir(out) == ["models.config"]

