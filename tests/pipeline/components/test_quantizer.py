"""Quantizer's executor alone, on the Exporter's artifact: the TFLite files, their sizes and the
gate's outcome as properties (a failed gate is recorded, not raised); a SavedModel that llm_export
did not write and a bad variant."""

import json
import os
import re

import pytest

from llm_tf.errors import ConfigError, DataError
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import Quantizer
from tests.pipeline.components.harness import artifact, execute, ref
from tests.pipeline.saved_models import save_length_classifier
from tests.plot_checks import assert_png

SAVED_MODEL = ref(artifacts.SAVED_MODEL, "Exporter", "saved_model")
FAST = {"forms": ("text",), "variants": ("float32",), "eval_count": 8, "latency_runs": 1}


def test_variants_sizes_and_a_passed_gate_are_recorded(tmp_path, saved_model):
    run = execute(Quantizer(SAVED_MODEL, **FAST), tmp_path, {"saved_model": saved_model})
    props = run.props("tflite_models")
    out = run.outputs["tflite_models"]
    assert props["files"] == {"text_float32": "text_float32.tflite"}
    assert props["sizes"] == {"text_float32": os.path.getsize(os.path.join(out, "text_float32.tflite"))} and \
        props["sizes"]["text_float32"] > 10_000
    assert props["gate_passed"] is True and props["failed"] == []
    assert run.result.metrics == {"variants": 1, "gate_passed": True}
    # Plain progress lines under the component's line (never a bar), then the outcome.
    lines = run.messages
    assert len(lines) == 7 and lines[0] == "[1/3] SavedModel: predicting 8 eval texts"
    assert re.fullmatch(r"\[1/3\] SavedModel: accuracy \d+\.\d\d% on 8 eval texts \(\d+\.\ds\)", lines[1])
    assert lines[2] == "[2/3] text_float32: converting"
    assert re.fullmatch(r"\[2/3\] text_float32: converted, \d+\.\d\d MB \(\d+\.\ds\)", lines[3])
    assert lines[4] == "[3/3] text_float32: evaluating 8 texts, timing 1 invokes"
    assert re.fullmatch(r"\[3/3\] text_float32: accuracy \d+\.\d\d% \(agreement 100\.00%\), p50 \d+\.\d{3} ms "
                        r"\(\d+\.\ds\)", lines[5])
    assert lines[6] == "gate passed; files: text_float32.tflite"
    assert props["plots"] == ["report.png"]
    assert_png(os.path.join(out, "report.png"), 800, 300)
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    # The properties reach the library call.
    assert report["command"] == "llm_pipeline Quantizer" and report["eval_data"]["count"] == 8
    assert report["latency"]["runs"] == 1 and report["gate"]["max_accuracy_drop"] == 1.0
    assert report["saved_model"] == os.path.join(saved_model.uri, "1")


def test_a_failed_gate_is_recorded_and_the_files_are_kept(tmp_path, saved_model):
    quantizer = Quantizer(SAVED_MODEL, **{**FAST, "max_accuracy_drop": -100.0})   # must beat it by 100 points
    run = execute(quantizer, tmp_path, {"saved_model": saved_model})
    props = run.props("tflite_models")
    assert props["gate_passed"] is False and props["failed"] == ["text_float32"]
    assert os.path.isfile(os.path.join(run.outputs["tflite_models"], "text_float32.tflite"))
    assert run.result.metrics == {"variants": 1, "gate_passed": False}
    assert run.messages[-1].startswith("gate FAILED for text_float32; files: ")


def test_a_missing_saved_model_is_named(tmp_path):
    with pytest.raises(DataError, match=r"/gone/1: not a SavedModel version directory \(no saved_model.pb\)"):
        execute(Quantizer(SAVED_MODEL, **FAST), tmp_path,
                {"saved_model": artifact(artifacts.SAVED_MODEL, tmp_path / "gone", version=1)})


def test_a_saved_model_not_written_by_llm_export_is_refused(tmp_path):
    save_length_classifier(str(tmp_path / "other" / "1"), max_words=3)
    with pytest.raises(ConfigError, match=r"/other/1: SavedModel has no 'predict_tokens' signature"):
        execute(Quantizer(SAVED_MODEL, **FAST), tmp_path,
                {"saved_model": artifact(artifacts.SAVED_MODEL, tmp_path / "other", version=1)})


def test_an_unknown_variant_is_named(tmp_path, saved_model):
    with pytest.raises(ConfigError, match="--variants: unknown variant 'int4'"):
        execute(Quantizer(SAVED_MODEL, variants=("int4",)), tmp_path, {"saved_model": saved_model})
