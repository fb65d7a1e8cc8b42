"""The interleaved TFLite latency benchmark: summaries, arguments, and one real run."""

import json
import os

import pytest

from benchmarks import tflite_latency
from tests.export.tflite_fixtures import eval_texts


def test_speedup_is_taken_per_round_against_float32():
    times = {"tiny/tokens": {"float32": [[2.0, 2.0, 2.2], [4.0, 4.0, 4.0]],
                             "dynamic_int8": [[1.0, 1.0, 1.2], [1.0, 1.0, 1.0]]}}
    summary = tflite_latency.summarize(times)["tiny/tokens"]
    assert summary["float32"]["speedup"]["runs"] == [1.0, 1.0]
    assert summary["dynamic_int8"]["speedup"]["runs"] == pytest.approx([2.0, 4.0])
    assert summary["dynamic_int8"]["speedup"]["median"] == pytest.approx(3.0)
    assert summary["dynamic_int8"]["round_p50_ms"] == [1.0, 1.0]
    assert summary["float32"]["best_round_p50_ms"] == 2.0


def test_speedup_against_a_reference_model_is_per_round_and_per_form():
    times = {"teacher/tokens": {"float32": [[10.0], [20.0]], "dynamic_int8": [[5.0], [5.0]]},
             "student/tokens": {"float32": [[4.0], [4.0]], "dynamic_int8": [[2.0], [1.0]]},
             "student/text": {"float32": [[4.0], [4.0]], "dynamic_int8": [[2.0], [2.0]]}}
    summary = tflite_latency.summarize(times, reference="teacher")
    assert summary["student/tokens"]["dynamic_int8"]["speedup_vs_reference"]["runs"] == pytest.approx([5.0, 20.0])
    assert summary["teacher/tokens"]["float32"]["speedup_vs_reference"]["runs"] == pytest.approx([1.0, 1.0])
    assert "speedup_vs_reference" not in summary["student/text"]["dynamic_int8"], "no teacher text form was timed"
    assert "speedup_vs_reference" not in tflite_latency.summarize(times)["student/tokens"]["float32"]


def test_arguments_need_float32_and_name_dir_pairs():
    with pytest.raises(SystemExit):
        tflite_latency.parse_args(["--model=tiny=/x", "--variants=dynamic_int8"])
    with pytest.raises(SystemExit):
        tflite_latency.parse_args(["--model=/only/a/dir"])
    with pytest.raises(SystemExit):
        tflite_latency.parse_args(["--model=tiny=/x", "--gemm_shapes=128by512"])
    args = tflite_latency.parse_args(["--model=tiny=/x", "--model=mini=/y", "--forms=tokens", "--gemm_shapes="])
    assert args.model == [("tiny", "/x"), ("mini", "/y")] and args.forms == ["tokens"] and args.gemm_shapes == []
    assert tflite_latency.parse_args(["--model=t=/x"]).gemm_shapes == [(128, 512), (256, 1024), (768, 3072)]


def test_missing_files_are_named_with_what_is_there(tmp_path):
    (tmp_path / "tokens_float32.tflite").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="tokens_dynamic_int8.tflite not found.*holds: tokens_float32.tflite"):
        tflite_latency.model_files(str(tmp_path), ["tokens"], ["float32", "dynamic_int8"])


def test_a_directory_without_its_report_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="report.json: no llm_quantize report naming its SavedModel"):
        tflite_latency.saved_model_of(str(tmp_path))
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="KeyError"):
        tflite_latency.saved_model_of(str(tmp_path))


def test_a_real_run_times_every_variant_in_every_round(converted, exported_version, tmp_path):
    quantized = tmp_path / "q"
    quantized.mkdir()
    for name in ("tokens_float32", "tokens_dynamic_int8", "text_float32", "text_dynamic_int8"):
        os.symlink(converted[name][0], quantized / f"{name}.tflite")
    (quantized / "report.json").write_text(json.dumps({"saved_model": exported_version}))
    _, _, dev = eval_texts()
    results = tmp_path / "results"
    assert tflite_latency.main([f"--model=tiny={quantized}", f"--eval_data={dev}", "--texts=4", "--rounds=2",
                                "--invokes=3", "--warmup=1", "--gemm_shapes=32x64", "--gemm_invokes=3",
                                f"--results_dir={results}"]) == 0
    result = json.loads((results / "tflite_latency.json").read_text())
    assert set(result["summary"]) == {"tiny/tokens", "tiny/text"}
    for variants in result["summary"].values():
        assert set(variants) == {"float32", "dynamic_int8"}
        assert all(len(v["round_p50_ms"]) == 2 and v["p50_ms"] > 0 for v in variants.values())
        assert variants["float32"]["speedup"]["runs"] == [1.0, 1.0]
    [gemm] = result["gemms"]
    assert (gemm["k"], gemm["n"]) == (32, 64)
    assert gemm["speedup"] == pytest.approx(gemm["float32_ms"] / gemm["dynamic_int8_ms"])
    text = (results / "tflite_latency.md").read_text()
    assert "| 32 x 64 |" in text
    assert "| tiny/tokens | dynamic_int8 |" in text and "Int8-relevant CPU features" in text
    assert (results / "tflite_latency.png").stat().st_size > 0
