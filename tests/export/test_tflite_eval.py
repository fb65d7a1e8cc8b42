"""Tests for llm_tf/export/tflite_eval.py and tflite_report.py: measurements, the gate, the report files."""

import json
import os

import pytest

from llm_tf.errors import ConfigError, DataError
from llm_tf.export import compression, tflite_eval, tflite_report
from tests.export.tflite_fixtures import eval_texts


def _result(name: str, accuracy: float) -> tflite_eval.VariantResult:
    form, variant = name.split("_", 1)
    return tflite_eval.VariantResult(name, form, variant, name + ".tflite", 1000, accuracy, 1.0, 0.0, 0.0, 1.0, 2.0)


def test_gate_marks_drops_beyond_the_threshold():
    results = [_result("tokens_float32", 0.80), _result("tokens_full_int8", 0.785), _result("text_full_int8", 0.79)]
    failed = tflite_eval.apply_gate(results, 0.80, 1.0, {"tokens_float32", "tokens_full_int8", "text_full_int8"})
    assert failed == ["tokens_full_int8"]
    assert [r.passed for r in results] == [True, False, True]
    assert results[1].accuracy_drop_points == pytest.approx(1.5)
    assert results[2].accuracy_drop_points == pytest.approx(1.0)  # exactly at the threshold passes
    # Not gated: reported, never failed.
    assert tflite_eval.apply_gate(results, 0.80, 1.0, {"tokens_float32"}) == []
    assert results[1].gated is False and results[1].passed is True
    # Impossibly tight (the variant must beat the SavedModel): even float32 fails.
    assert tflite_eval.apply_gate(results, 0.80, -0.5, {"tokens_float32"}) == ["tokens_float32"]


def test_gate_selection():
    names = ["text_float32", "text_full_int8", "tokens_float32", "tokens_full_int8"]
    assert tflite_eval.gate_selection(names, []) == set(names)
    assert tflite_eval.gate_selection(names, ["full_int8"]) == {"text_full_int8", "tokens_full_int8"}
    assert tflite_eval.gate_selection(names, ["tokens", "text_float32"]) == {"tokens_float32", "tokens_full_int8",
                                                                             "text_float32"}
    with pytest.raises(ConfigError, match="'int4' matches no variant"):
        tflite_eval.gate_selection(names, ["int4"])


def test_unknown_eval_labels_are_named():
    assert tflite_eval.label_ids_of(["1", "0", "1"], ["0", "1"], "dev.tsv").tolist() == [1, 0, 1]
    with pytest.raises(DataError, match="dev.tsv: label\\(s\\) 'positive' not among the model's labels \\(0, 1\\)"):
        tflite_eval.label_ids_of(["1", "positive"], ["0", "1"], "dev.tsv")


def test_evaluate_variant_measures_against_the_saved_model(converted, loaded_export):
    texts, labels, source = eval_texts(24)
    truth = tflite_eval.label_ids_of(labels, loaded_export.labels, source)
    reference = tflite_eval.reference_predictions(loaded_export, texts, truth, batch_size=10)
    assert reference.scores.shape == (len(texts), 2) and reference.tokens["token_ids"].shape == (len(texts), 32)
    for name in ("text_float32", "tokens_float32", "tokens_full_int8"):
        path, conversion = converted[name]
        result = tflite_eval.evaluate_variant(path, conversion.form, conversion.variant, texts, truth, reference,
                                              latency_runs=20)
        assert result.size_bytes == os.path.getsize(path) and result.file == name + ".tflite"
        assert result.gzip_bytes == compression.file_report(path)["gzip_bytes"]
        assert 0 < result.gzip_bytes < result.size_bytes
        assert result.size_breakdown["total"] == result.size_bytes
        assert (result.size_breakdown["tokenizer_models"] > 0) == (conversion.form == "text")
        assert result.kernels["delegated_nodes"] > 0 and "FULLY_CONNECTED" not in result.kernels["tflite_kernels"]
        assert 0 < result.latency_ms_p50 <= result.latency_ms_p99
        if conversion.variant == "float32":
            assert result.agreement == 1.0 and result.accuracy == pytest.approx(reference.accuracy)
            assert result.max_abs_score_diff < 1e-5 and result.max_abs_logit_diff < 1e-4
        assert result.tokenizer_mismatches == (0 if conversion.form == "text" else None)
    with pytest.raises(ConfigError, match="latency runs must be >= 1"):
        tflite_eval.evaluate_variant(path, "tokens", "full_int8", texts, truth, reference, latency_runs=0)


def test_size_ratios_are_relative_to_the_same_forms_float32():
    results = [_result("tokens_float32", 0.8), _result("tokens_dynamic_int8", 0.8), _result("text_dynamic_int8", 0.8)]
    results[1].size_bytes = 280
    tflite_eval.size_ratios(results)
    assert [r.size_vs_float32 for r in results] == [1.0, 0.28, None]


def test_cpu_info_reads_int8_features(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx2 fma avx512_vnni\n\n"
                       "processor\t: 1\nmodel name\t: Some CPU\nflags\t\t: fpu\n")
    assert tflite_eval.cpu_info(str(cpuinfo)) == {"cpu_model": "Some CPU", "cpu_features": ["avx2", "fma",
                                                                                            "avx512_vnni"]}
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU part\t: 0xd41\n")
    assert tflite_eval.cpu_info(str(arm))["cpu_features"] == ["asimddp", "i8mm"]
    assert tflite_eval.cpu_info(str(tmp_path / "missing")) == {}
    assert "cpus" in tflite_eval.machine() and "tflite_runtime" in tflite_eval.machine()


def test_report_files(tmp_path):
    results = [_result("tokens_float32", 0.80), _result("tokens_full_int8", 0.70)]
    results[1].notes = ["int8-only builtins failed; float kernels allowed where int8 has none"]
    results[0].gzip_bytes, results[1].gzip_bytes, results[1].size_bytes = 900, 300, 400
    results[1].latency_ms_p50 = 0.5
    tflite_eval.size_ratios(results)
    results[1].size_breakdown = {"total": 400, "tokenizer_models": 0, "constants": {"int8": 250, "float32": 4},
                                 "metadata": {"llm_tf.vocab": 50}, "associated_files": 60, "other": 36}
    results[1].kernels = {"nodes": 10, "delegated_nodes": 8, "delegate_partitions": 2,
                          "tflite_kernels": {"GATHER": 1, "SHAPE": 1}}
    failed = tflite_eval.apply_gate(results, 0.80, 1.0, {"tokens_float32", "tokens_full_int8"})
    report = {
        "saved_model": "/models/sst2/1", "eval_data": {"source": "dev.tsv", "count": 10},
        "representative_data": {"source": "prepared:train", "count": 5}, "reference": {"accuracy": 0.8},
        "latency": {"runs": 20, "batch_size": 1, "num_threads": 1,
                    "interpreter": {"runtime": "ai_edge_litert 9", "op_resolver": "AUTO"}},
        "gate": {"max_accuracy_drop": 1.0, "variants": ["tokens_float32", "tokens_full_int8"], "passed": not failed,
                 "failed": failed},
        "variants": [r.__dict__ for r in results], "command": "llm_quantize --x",
        "machine": {"cpus": 2, "cpu_features": ["avx2", "fma"]},
    }
    paths = tflite_report.write_report(report, str(tmp_path))
    assert json.load(open(paths["json"]))["gate"]["failed"] == ["tokens_full_int8"]
    markdown = open(paths["md"]).read()
    assert "**FAILED: tokens_full_int8**" in markdown
    assert "| tokens_full_int8 | 0.00 | 0.00 | 40.0% | 70.00% | 10.00 | 100.00% |" in markdown
    assert "**FAIL** |" in markdown
    assert "| 0.500 | 2.000 | 2.00x | - | **FAIL** |" in markdown  # float32's p50 1.0 over 0.5
    assert "| tokens_full_int8 | int8 0.000, float32 0.000 |" not in markdown  # below 1 KB left out
    assert "| tokens_full_int8 | - | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 |" in markdown
    assert "| tokens_full_int8 | 10 | 8 | 2 | GATHER 1, SHAPE 1 |" in markdown
    assert "llm_quantize --x" in markdown and "int8-only builtins failed" in markdown
    assert "1 thread(s), ai_edge_litert 9, op resolver AUTO" in markdown and "cpu_features avx2 fma," in markdown
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["report.json", "report.md", "report.png"]
