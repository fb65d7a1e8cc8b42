"""Dynamic-length TFLite files (``convert_variant(dynamic_length=True)``, ``llm_quantize --dynamic_length``).

Every test reuses the session's tiny export (tests/conftest.py) and converts each dynamic-length
variant once per module (:func:`dynamic`).
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.export import signatures, tflite_convert, tflite_eval, tflite_metadata, tflite_runtime
from llm_tf.export.tflite_runtime import make_interpreter
from tests.export.tflite_fixtures import eval_texts

#: Label agreement with the SavedModel each precision must keep (as in test_tflite_convert.py).
MIN_AGREEMENT = {"float32": 1.0, "float16": 0.97, "dynamic_int8": 0.9, "full_int8": 0.75}
MAX_LOGIT_DIFF = {"float32": 1e-4, "float16": 5e-3, "dynamic_int8": 5e-2, "full_int8": 0.5}


@pytest.fixture(scope="module")
def dynamic(loaded_export):
    """``convert(form, variant, batch_size=0)``: the dynamic-length Conversion, converted once per module."""
    from llm_tf.export import representative

    calibration = representative.representative_texts(32, prepared_dir=loaded_export.prepared_dir).texts
    cache: dict = {}

    def convert(form: str, variant: str, batch_size: int = 0) -> tflite_convert.Conversion:
        key = (form, variant, batch_size)
        if key not in cache:
            cache[key] = tflite_convert.convert_variant(loaded_export, form, variant, calibration,
                                                        batch_size=batch_size, dynamic_length=True)
        return cache[key]

    return convert


def _saved_model_logits(export, inputs: dict) -> np.ndarray:
    return export.predict_tokens(**{k: tf.constant(v) for k, v in inputs.items()})["logits"].numpy()


def _inputs_of_length(export, texts: list[str], length: int) -> dict:
    """The texts packed, cut to ``length`` columns (the mask says which are real)."""
    packed = export.tokenize(texts)
    return {k: np.ascontiguousarray(v[:, :length]) for k, v in packed.items()}


@pytest.mark.parametrize("batch_size", [0, 1])
def test_tokens_form_runs_at_every_length_like_the_saved_model(dynamic, loaded_export, batch_size):
    runner = make_interpreter(model_content=dynamic("tokens", "float32", batch_size).content).get_signature_runner(
        tflite_convert.TFLITE_TOKENS_SIGNATURE)
    details = runner.get_input_details()
    assert {tuple(d["shape_signature"]) for d in details.values()} == {(batch_size or -1, -1)}
    assert tflite_runtime.has_dynamic_length(details)
    texts, _, _ = eval_texts(3 if batch_size == 0 else 1)
    seq_length = loaded_export.seq_length
    for length in sorted({1, 2, 5, seq_length // 2, seq_length}):
        inputs = _inputs_of_length(loaded_export, texts, length)
        got = runner(**inputs)
        assert got["logits"].shape == (len(texts), len(loaded_export.labels))
        np.testing.assert_allclose(got["logits"], _saved_model_logits(loaded_export, inputs), atol=1e-4)
    if batch_size == 1:
        with pytest.raises((ValueError, RuntimeError)):  # a fixed batch of one still refuses two
            runner(**_inputs_of_length(loaded_export, ["a", "b"], 4))


@pytest.mark.parametrize("variant", tflite_convert.VARIANTS)
def test_every_precision_agrees_at_each_texts_own_length(dynamic, converted, loaded_export, variant):
    texts, _, _ = eval_texts(32)
    packed = loaded_export.tokenize(texts)
    runner = make_interpreter(model_content=dynamic("tokens", variant).content).get_signature_runner()
    fixed = make_interpreter(model_path=converted[f"tokens_{variant}"][0]).get_signature_runner()
    got, want = [], []
    for i in range(len(texts)):
        one = {k: v[i:i + 1] for k, v in packed.items()}
        trimmed = tflite_runtime.fit_token_inputs(runner.get_input_details(), one)
        assert trimmed["token_ids"].shape[1] == max(int(one["padding_mask"].sum()), 1)
        got.append(runner(**trimmed)["logits"][0])
        want.append(fixed(**tflite_runtime.fit_token_inputs(fixed.get_input_details(), one))["logits"][0])
    got, want = np.array(got), np.array(want)
    reference = _saved_model_logits(loaded_export, packed)
    assert np.max(np.abs(got - reference)) <= MAX_LOGIT_DIFF[variant]
    agreement = float(np.mean(got.argmax(1) == reference.argmax(1)))
    fixed_agreement = float(np.mean(want.argmax(1) == reference.argmax(1)))
    assert agreement >= min(MIN_AGREEMENT[variant], fixed_agreement), (variant, agreement, fixed_agreement)


def _token_embedding_length(interpreter) -> int:
    """The length the encoder ran at: the token embedding's output [batch, length, hidden]."""
    found = [d["shape"] for d in interpreter.get_tensor_details()
             if "token_embedding" in d["name"] and len(d["shape"]) == 3]
    assert found, "no token embedding tensor"
    return int(found[0][1])


@pytest.mark.parametrize("batch_size", [0, 1])
def test_text_form_cuts_each_batch_to_its_longest_text(dynamic, loaded_export, batch_size):
    conversion = dynamic("text", "float32", batch_size)
    interpreter = make_interpreter(model_content=conversion.content)
    classify = interpreter.get_signature_runner("classify")
    tokenize = make_interpreter(model_content=conversion.content).get_signature_runner("tokenize")
    texts, _, _ = eval_texts(6)
    texts = texts + ["", "ok"]
    lengths = loaded_export.tokenize(texts)["padding_mask"].sum(axis=1)
    reference = _saved_model_logits(loaded_export, loaded_export.tokenize(texts))
    for i, text in enumerate(texts):
        out = classify(text=np.array([text.encode("utf-8")], dtype=object))
        np.testing.assert_allclose(out["logits"][0], reference[i], atol=1e-4)
        assert _token_embedding_length(interpreter) == lengths[i]
        # tokenize still packs to seq_length (what the tokens form of a fixed-length file takes).
        assert tokenize(text=np.array([text.encode("utf-8")], dtype=object))["token_ids"].shape == (
            1, loaded_export.seq_length)
    if batch_size == 0:
        out = classify(text=np.array([t.encode("utf-8") for t in texts], dtype=object))
        np.testing.assert_allclose(out["logits"], reference, atol=1e-4)
        assert _token_embedding_length(interpreter) == lengths.max()


def test_xnnpack_still_runs_the_encoder(dynamic, converted, loaded_export):
    """The matrix products stay in XNNPACK; the length's shape arithmetic adds a few partitions."""
    placed = {}
    packed = loaded_export.tokenize(["a gripping , funny film"])
    for name, content in (("dynamic", dynamic("tokens", "float32").content),
                          ("fixed", open(converted["tokens_float32"][0], "rb").read())):
        interpreter = make_interpreter(model_content=content)
        runner = interpreter.get_signature_runner()
        runner(**tflite_runtime.fit_token_inputs(runner.get_input_details(), packed))
        placed[name] = tflite_runtime.kernel_placement(interpreter)
    for kernels in placed.values():
        assert not {"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"} & set(kernels["tflite_kernels"]), kernels
    assert placed["dynamic"]["delegated_nodes"] >= 0.5 * placed["fixed"]["delegated_nodes"]


def test_numpy_trim_is_the_saved_models_trim():
    rng = np.random.default_rng(0)
    for lengths in ([3, 7, 1], [0, 0], [5]):
        mask = np.array([[1] * n + [0] * (8 - n) for n in lengths], np.int32)
        inputs = {"token_ids": rng.integers(1, 99, mask.shape).astype(np.int32) * mask,
                  "segment_ids": np.zeros_like(mask), "padding_mask": mask}
        want = {k: v.numpy() for k, v in signatures.trim_to_longest({k: tf.constant(v) for k, v in inputs.items()})
                .items()}
        got = tflite_runtime.trim_token_inputs(inputs)
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_fixed_length_files_are_fed_as_they_are(converted, loaded_export):
    path, conversion = converted["tokens_float32"]
    runner = make_interpreter(model_path=path).get_signature_runner()
    assert not tflite_runtime.has_dynamic_length(runner.get_input_details())
    packed = loaded_export.tokenize(["ok"])
    assert tflite_runtime.fit_token_inputs(runner.get_input_details(), packed) is packed
    info = json.loads(tflite_convert.export_info_json(loaded_export, conversion))
    assert info["dynamic_length"] is False and conversion.dynamic_length is False


def test_evaluation_feeds_each_text_at_its_length(dynamic, loaded_export, tmp_path):
    texts, labels, source = eval_texts(16)
    truth = tflite_eval.label_ids_of(labels, loaded_export.labels, source)
    reference = tflite_eval.reference_predictions(loaded_export, texts, truth)
    conversion = dynamic("tokens", "float32")
    assert json.loads(tflite_convert.export_info_json(loaded_export, conversion))["dynamic_length"] is True
    path = str(tmp_path / "tokens_float32.tflite")
    with open(path, "wb") as f:
        f.write(tflite_metadata.with_model_files(conversion.content, loaded_export.labels,
                                                 open(loaded_export.vocab_path, "rb").read(),
                                                 tflite_convert.export_info_json(loaded_export, conversion)))
    result = tflite_eval.evaluate_variant(path, "tokens", "float32", texts, truth, reference, latency_runs=5)
    assert result.dynamic_length and result.agreement == 1.0 and result.max_abs_logit_diff < 1e-4
    timer = tflite_eval.InvokeTimer(make_interpreter(model_path=path), "serving_default")
    assert timer.dynamic_length
    timer(**{k: v[:1] for k, v in reference.tokens.items()})
    assert timer.shapes["token_ids"] == (1, int(reference.tokens["padding_mask"][0].sum()))


def test_llm_quantize_dynamic_length_end_to_end(exported_version, tmp_path):
    from tests.bin.test_quantize import llm_quantize

    _, _, dev = eval_texts()
    out = tmp_path / "dynamic"
    result = llm_quantize(f"--saved_model_dir={exported_version}", f"--output_dir={out}", "--forms=tokens,text",
                          "--variants=float32", "--dynamic_length", f"--eval_data={dev}", "--eval_count=16",
                          "--latency_runs=5")
    assert result.returncode == 0, result.stderr
    report = json.load(open(out / "report.json"))
    assert report["dynamic_length"] is True
    assert "resizing the tokens form's inputs to each text's length" in report["latency"]["what"]
    by_name = {v["name"]: v for v in report["variants"]}
    assert all(v["dynamic_length"] for v in by_name.values())
    assert by_name["tokens_float32"]["agreement"] == 1.0 and by_name["text_float32"]["agreement"] == 1.0
    assert by_name["text_float32"]["tokenizer_mismatches"] == 0
    assert "Input length: dynamic, 1 to 32" in open(out / "report.md").read()
    content = open(out / "tokens_float32.tflite", "rb").read()
    assert json.loads(tflite_metadata.read_metadata(content)[tflite_metadata.INFO_ENTRY])["dynamic_length"] is True
    runner = make_interpreter(model_content=content).get_signature_runner()
    assert {tuple(d["shape_signature"]) for d in runner.get_input_details().values()} == {(-1, -1)}



def test_selective_full_int8_keeps_a_dynamic_length(loaded_export):
    from llm_tf.export import representative

    calibration = representative.representative_texts(16, prepared_dir=loaded_export.prepared_dir).texts
    conversion = tflite_convert.convert_variant(loaded_export, "tokens", "full_int8", calibration,
                                                float_ops=["attention"], dynamic_length=True)
    assert conversion.dynamic_length and conversion.notes
    runner = make_interpreter(model_content=conversion.content).get_signature_runner()
    texts, _, _ = eval_texts(2)
    for length in (3, loaded_export.seq_length):
        inputs = _inputs_of_length(loaded_export, texts, length)
        got = runner(**inputs)["logits"]
        assert np.max(np.abs(got - _saved_model_logits(loaded_export, inputs))) <= MAX_LOGIT_DIFF["full_int8"]
