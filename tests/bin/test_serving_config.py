"""Tests for llm_tf/bin/serving_config.py, run as the installed console script.

The binary is never imported here: its absl flags would clash with other binaries' flags
defined in the same test process.
"""

import os
import shutil
import subprocess
import sys

import pytest

from llm_tf.serving import config, config_files


def llm_serving_config(*args):
    executable = shutil.which("llm_serving_config") or os.path.join(os.path.dirname(sys.executable),
                                                                     "llm_serving_config")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=60)


def test_writes_three_files_the_loaders_read_back(tmp_path):
    out = tmp_path / "serving"
    result = llm_serving_config(
        f"--output_dir={out}", "--model_name=sst2", "--model_base_path=/models/sst2", "--version_policy=specific",
        "--versions=1,2", "--version_labels=stable=1,canary=2", "--max_batch_size=16", "--allowed_batch_sizes=4,16",
        "--batch_timeout_micros=500", "--num_batch_threads=3", "--max_enqueued_batches=9", "--monitoring_path=/metrics",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"--model_config_file={out}/models.config",
        f"--batching_parameters_file={out}/batching_parameters.txt",
        f"--monitoring_config_file={out}/monitoring.config",
    ]
    assert config_files.load_model_config(str(out / "models.config")) == [
        config.ModelSpec("sst2", "/models/sst2", "specific", versions=(1, 2), version_labels={"stable": 1, "canary": 2})
    ]
    assert config_files.load_batching_parameters(str(out / "batching_parameters.txt")) == config.BatchingSpec(
        max_batch_size=16, batch_timeout_micros=500, allowed_batch_sizes=(4, 16), num_batch_threads=3,
        max_enqueued_batches=9)
    assert config_files.load_monitoring_config(str(out / "monitoring.config")) == config.MonitoringSpec(path="/metrics")


@pytest.mark.parametrize("args, message", [
    (["--version_labels=stable=one"], "--version_labels: label 'stable': 'one' is not an integer"),
    (["--versions=1"], "--versions is only used with --version_policy=specific"),
    (["--version_policy=all", "--num_versions=2"], "--num_versions is only used with --version_policy=latest"),
    (["--version_policy=specific", "--versions=1", "--version_labels=canary=2"],
     "{out}/models.config: model 'sst2': version_labels: label 'canary' points at version 2, which the specific "
     "policy does not serve (versions: 1)"),
    (["--allowed_batch_sizes=8,16"],
     "{out}/batching_parameters.txt: allowed_batch_sizes: last entry must equal max_batch_size; last entry was 16; "
     "expected 32"),
    (["--model_name=sst 2"], "{out}/models.config: model 'sst 2': name: must be non-empty"),
    (["--version_labels=stable"], "--version_labels: 'stable' is not label=version"),
    (["--version_labels=a=1,a=2"], "--version_labels: label 'a' given twice"),
    (["--version_policy=specific", "--versions=1,two"], "--versions: 'two' is not an integer"),
])
def test_bad_values_exit_one_with_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "serving"
    result = llm_serving_config(f"--output_dir={out}", "--model_name=sst2", "--model_base_path=/models/sst2", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llm_serving_config: error: " + message.format(out=out)), lines
    assert not out.exists()


def test_missing_required_flag_is_a_flags_error(tmp_path):
    result = llm_serving_config(f"--output_dir={tmp_path}", "--model_name=sst2")
    assert result.returncode != 0
    assert "--model_base_path" in result.stderr and "Traceback" not in result.stderr

