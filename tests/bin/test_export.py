"""Tests for llm_tf/bin/export.py, run as the installed console script."""

import json
import os
import shutil
import subprocess
import sys

from tests.bin.start_line import without_start_line


def llm_export(*args):
    executable = shutil.which("llm_export") or os.path.join(os.path.dirname(sys.executable), "llm_export")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=300)


def test_exports_and_prints_one_json_line(trained_classifier, tmp_path):
    result = llm_export(f"--model_dir={trained_classifier}", f"--model_base_path={tmp_path / 'sst2'}", "--version=7")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["version"] == 7 and line["path"] == str(tmp_path / "sst2" / "7")
    assert line["signatures"] == ["classify", "predict_tokens", "serving_default"]
    assert (tmp_path / "sst2" / "7" / "saved_model.pb").is_file()


def test_errors_are_one_line(tmp_path):
    result = llm_export(f"--model_dir={tmp_path}", f"--model_base_path={tmp_path / 'm'}")
    assert result.returncode == 1
    assert without_start_line(result.stderr).strip().splitlines() == [
        f"llm_export: error: {tmp_path}: not a training directory (no params.yaml; run llm_train first)"]
