"""Tests for llm_tf/bin/quantize.py, run as the installed console script."""

import json
import os
import shutil
import subprocess
import sys

from llm_tf.export import tflite_metadata
from llm_tf.export.tflite_runtime import make_interpreter
from tests.bin.start_line import without_start_line
from tests.export.tflite_fixtures import eval_texts


def llm_quantize(*args):
    executable = shutil.which("llm_quantize") or os.path.join(os.path.dirname(sys.executable), "llm_quantize")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=600)


def test_converts_evaluates_and_exits_3_when_the_gate_fails(exported_version, tmp_path):
    _, _, dev = eval_texts()
    out = tmp_path / "tflite"
    # An impossibly tight gate on float32 (it must beat the SavedModel by a point): exit 3.
    result = llm_quantize(f"--saved_model_dir={exported_version}", f"--output_dir={out}", "--forms=tokens,text",
                          "--variants=float32,full_int8", "--representative_count=16", f"--eval_data={dev}",
                          "--eval_count=24", "--latency_runs=10", "--max_accuracy_drop=-1",
                          "--gate_variants=tokens_float32")
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "llm_quantize: accuracy gate failed: tokens_float32 lost more than -1.0 points")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(summary["variants"]) == ["text_float32", "text_full_int8", "tokens_float32", "tokens_full_int8"]
    # Progress on stderr, one plain line per step when it is not a terminal (a pipe here).
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert progress[0] == "[1/9] SavedModel: predicting 24 eval texts"
    assert progress[2] == "[2/9] tokens_float32: converting"
    assert progress[4] == "[3/9] tokens_float32: evaluating 24 texts, timing 10 invokes"
    assert progress[6] == "[4/9] tokens_full_int8: converting, calibrated on 16 texts"
    assert progress[-1].startswith("[9/9] text_full_int8: accuracy ") and len(progress) == 18
    assert "\r" not in result.stderr                                   # no bar
    assert summary["gate_passed"] is False
    assert sorted(os.listdir(out)) == ["report.json", "report.md", "report.png", "text_float32.tflite",
                                       "text_full_int8.tflite", "tokens_float32.tflite", "tokens_full_int8.tflite"]
    report = json.load(open(out / "report.json"))
    assert report["gate"] == {"max_accuracy_drop": -1.0, "variants": ["tokens_float32"], "passed": False,
                              "failed": ["tokens_float32"]}
    assert report["eval_data"] == {"source": os.path.abspath(dev), "count": 24}
    assert report["representative_data"]["count"] == 16 and report["representative_data"]["source"].endswith(":train")
    assert "--eval_count=24" in report["command"]
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["tokens_float32"]["agreement"] == 1.0 and by_name["text_float32"]["agreement"] == 1.0
    assert by_name["text_float32"]["tokenizer_mismatches"] == 0
    assert by_name["text_full_int8"]["tokenizer_mismatches"] == 0
    assert sorted(name for name, v in by_name.items() if not v["gated"]) == ["text_float32", "text_full_int8",
                                                                             "tokens_full_int8"]
    assert by_name["text_full_int8"]["passed"] and not by_name["text_full_int8"]["gated"]
    # Labels and vocabulary travel inside each file.
    content = open(out / "text_full_int8.tflite", "rb").read()
    assert tflite_metadata.read_metadata(content)[tflite_metadata.LABELS_ENTRY] == b"0\n1\n"
    assert tflite_metadata.read_associated_files(content)["vocab.txt"] == open(
        os.path.join(exported_version, "assets", "vocab.txt"), "rb").read()
    make_interpreter(model_content=content)


def test_help_documents_the_gate_exit_code():
    result = llm_quantize("--helpfull")
    assert "Exit codes: 0 every gated variant passed; 1 error (one line); 3 the accuracy gate failed" in result.stdout
    assert "--max_accuracy_drop" in result.stdout and "--representative_data" in result.stdout


def test_errors_are_one_line(tmp_path):
    result = llm_quantize(f"--saved_model_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}", "--variants=int4")
    assert result.returncode == 1
    assert without_start_line(result.stderr).strip().splitlines() == [
        "llm_quantize: error: --variants: unknown variant 'int4' (expected: float32, float16, dynamic_int8, full_int8)"]
    assert not (tmp_path / "out").exists()


def test_library_errors(exported_version, tmp_path, write):
    """The same checks in process (no interpreter start-up per case)."""
    import pytest

    from llm_tf.errors import DataError
    from llm_tf.export.tflite_quantize import QuantizeConfig, quantize

    with pytest.raises(DataError, match=f"{tmp_path}: not a SavedModel version directory"):
        quantize(QuantizeConfig(saved_model_dir=str(tmp_path), output_dir=str(tmp_path / "out")))
    base = dict(saved_model_dir=exported_version, output_dir=str(tmp_path / "out"), forms=["tokens"], eval_count=4)
    empty = write("empty.txt", "\n")
    with pytest.raises(DataError, match=f"representative dataset is empty: {empty} holds no text"):
        quantize(QuantizeConfig(**base, variants=["full_int8"], representative_data=empty))
    unlabelled = write("unlabelled.tsv", "sentence\na fine film\n")
    with pytest.raises(DataError, match="eval data has no labels"):
        quantize(QuantizeConfig(**base, variants=["float32"], eval_data=unlabelled))
    other = write("other.tsv", "sentence\tlabel\na fine film\tpositive\n")
    with pytest.raises(DataError, match="label\\(s\\) 'positive' not among the model's labels"):
        quantize(QuantizeConfig(**base, variants=["float32"], eval_data=other))
    assert not (tmp_path / "out").exists()


def test_batch_size_one_variants_are_fixed_at_one_example(exported_version, tmp_path):
    _, _, dev = eval_texts()
    out = tmp_path / "fixed"
    result = llm_quantize(f"--saved_model_dir={exported_version}", f"--output_dir={out}", "--forms=tokens,text",
                          "--variants=float32,dynamic_int8", "--batch_size=1", f"--eval_data={dev}", "--eval_count=24",
                          "--latency_runs=5")
    assert result.returncode == 0, result.stderr
    report = json.load(open(out / "report.json"))
    assert report["batch_size"] == 1
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["text_float32"]["tokenizer_mismatches"] == 0 and by_name["text_float32"]["agreement"] == 1.0
    for name in by_name:
        content = open(out / f"{name}.tflite", "rb").read()
        assert json.loads(tflite_metadata.read_metadata(content)[tflite_metadata.INFO_ENTRY])["batch_size"] == 1
        runner = make_interpreter(model_content=content).get_signature_runner(
            "classify" if name.startswith("text") else "serving_default")
        assert {d["shape_signature"][0] for d in runner.get_input_details().values()} == {1}


def test_batch_size_other_than_0_or_1_is_one_line(tmp_path):
    result = llm_quantize(f"--saved_model_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}", "--batch_size=4")
    assert result.returncode == 1
    assert without_start_line(result.stderr).strip().splitlines() == [
        "llm_quantize: error: --batch_size must be 0 (any batch size) or 1 (fixed at one example), got 4"]
