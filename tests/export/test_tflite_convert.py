"""Tests for llm_tf/export/tflite_convert.py: every variant loads, runs and agrees with the SavedModel."""

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.errors import ConfigError, DataError, LlmTfError
from llm_tf.export import export_dir, tflite_convert
from llm_tf.export.tflite_runtime import make_interpreter
from llm_tf.text.tokenizer import TextTokenizer
from tests.export.tflite_fixtures import eval_texts

#: Label agreement with the SavedModel required of each precision on the eval sentences. The
#: tiny fixture model is barely trained (scores near 0.5), which is the hardest case for int8.
MIN_AGREEMENT = {"float32": 1.0, "float16": 0.97, "dynamic_int8": 0.9, "full_int8": 0.75}
MAX_SCORE_DIFF = {"float32": 1e-5, "float16": 5e-3, "dynamic_int8": 5e-2, "full_int8": 0.25}


def _run_variant(path, form, texts, export):
    return _run_variant_on(make_interpreter(model_path=path), form, texts, export)


def _run_variant_on(interpreter, form, texts, export):
    signatures = interpreter.get_signature_list()
    if form == "text":
        assert signatures == {"classify": {"inputs": ["text"], "outputs": ["label_ids", "labels", "logits", "scores"]},
                              "tokenize": {"inputs": ["text"], "outputs": ["padding_mask", "segment_ids", "token_ids"]}}
        runner = interpreter.get_signature_runner("classify")
        outs = [runner(text=np.array([t.encode()], dtype=object)) for t in texts]
    else:
        assert list(signatures) == ["serving_default"]
        runner = interpreter.get_signature_runner("serving_default")
        packed = export.tokenize(texts)
        outs = [runner(**{k: v[i:i + 1] for k, v in packed.items()}) for i in range(len(texts))]
    return outs


@pytest.mark.parametrize("form", tflite_convert.FORMS)
@pytest.mark.parametrize("variant", tflite_convert.VARIANTS)
def test_variant_agrees_with_the_saved_model(converted, loaded_export, form, variant):
    texts, _, _ = eval_texts(48)
    path, conversion = converted[f"{form}_{variant}"]
    served = loaded_export.serve(texts)
    outs = _run_variant(path, form, texts, loaded_export)
    scores = np.concatenate([o["scores"] for o in outs])
    label_ids = np.array([int(o["label_ids"][0]) for o in outs])
    agreement = float(np.mean(label_ids == served["label_ids"]))
    assert agreement >= MIN_AGREEMENT[variant], (conversion.name, agreement)
    assert np.max(np.abs(scores - served["scores"])) <= MAX_SCORE_DIFF[variant]
    if form == "text":
        names = [o["labels"][0].decode() for o in outs]
        assert names == [loaded_export.labels[i] for i in label_ids]


@pytest.mark.parametrize("form", tflite_convert.FORMS)
def test_fixed_batch_one_folds_the_shape_ops_and_predicts_the_same(converted, loaded_export, form):
    from llm_tf.export.tflite_runtime import kernel_placement

    texts, _, _ = eval_texts(16)
    conversion = tflite_convert.convert_variant(loaded_export, form, "dynamic_int8", batch_size=1)
    assert conversion.batch_size == 1
    fixed = make_interpreter(model_content=conversion.content)
    runner = fixed.get_signature_runner(tflite_convert.classify_signature(form))
    assert all(d["shape_signature"][0] == 1 for d in runner.get_input_details().values())
    outs = _run_variant_on(fixed, form, texts, loaded_export)
    dynamic = make_interpreter(model_path=converted[f"{form}_dynamic_int8"][0])
    want = _run_variant_on(dynamic, form, texts, loaded_export)
    assert [int(o["label_ids"][0]) for o in outs] == [int(o["label_ids"][0]) for o in want]
    np.testing.assert_allclose(np.concatenate([o["logits"] for o in outs]),
                               np.concatenate([o["logits"] for o in want]), atol=1e-4)
    placed, placed_dynamic = kernel_placement(fixed), kernel_placement(dynamic)
    # The encoder's dynamic-batch shape arithmetic (REDUCE_PROD, CONCATENATION, ...) is gone from the TFLite kernels.
    assert placed_dynamic["tflite_kernels"]["REDUCE_PROD"] >= 4 and "REDUCE_PROD" not in placed["tflite_kernels"]
    assert placed["delegate_partitions"] < placed_dynamic["delegate_partitions"]
    if form == "tokens":  # the export's additive attention masks leave no SELECT_V2 to split the encoder
        assert "SELECT_V2" not in placed["tflite_kernels"] and placed["delegate_partitions"] <= 2, placed
    with pytest.raises((ValueError, RuntimeError)):  # the runtime refuses a batch of two at prepare time
        runner(**({"text": np.array([b"a", b"b"], dtype=object)} if form == "text" else
                  {k: np.zeros((2, loaded_export.seq_length), np.int32)
                   for k in ("token_ids", "segment_ids", "padding_mask")}))


def test_batch_sizes_other_than_any_or_one_are_refused(loaded_export):
    with pytest.raises(ConfigError, match="batch size must be 0 \\(any\\) or 1"):
        tflite_convert.convert_variant(loaded_export, "tokens", "float32", batch_size=8)


def test_sizes_shrink_with_precision(converted):
    size = {name: len(conversion.content) for name, (_, conversion) in converted.items()}
    for form in tflite_convert.FORMS:
        assert size[f"{form}_float16"] < size[f"{form}_float32"]
        assert size[f"{form}_dynamic_int8"] < size[f"{form}_float16"]
        assert size[f"{form}_full_int8"] < size[f"{form}_float16"]
    # The text form carries the tokenizer (its vocabulary) on top of the same model.
    assert size["text_float32"] > size["tokens_float32"]


def test_full_int8_quantizes_the_model_part_only(converted):
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    for form in tflite_convert.FORMS:
        path, _ = converted[f"{form}_full_int8"]
        model = schema.Model.GetRootAs(open(path, "rb").read(), 0)
        graph = model.Subgraphs(0)
        types = [names[graph.Tensors(i).Type()] for i in range(graph.TensorsLength())]
        assert types.count("INT8") > types.count("FLOAT32")  # activations and weights are int8
        interpreter = make_interpreter(model_path=path)
        runner = interpreter.get_signature_runner(list(interpreter.get_signature_list())[0])
        inputs = {k: v["dtype"] for k, v in runner.get_input_details().items()}
        outputs = {k: v["dtype"] for k, v in runner.get_output_details().items()}
        assert outputs["scores"] == np.float32 and outputs["label_ids"] == np.int32
        if form == "text":
            assert inputs == {"text": np.bytes_} and outputs["labels"] == np.bytes_
        else:
            assert set(inputs.values()) == {np.int32}


def test_text_form_tokenizes_exactly_like_the_saved_model(converted, loaded_export):
    texts, _, _ = eval_texts(200)
    texts += ["", "   ", "Ünïcödé ÀCCENTS and ÉMOJI 🎬 !!!", "word " * 100]
    # The tokenizer the SavedModel was trained and exported with (the prepared data's).
    original = TextTokenizer.from_directory(loaded_export.prepared_dir + "/tokenizer")
    want = original(tf.constant(texts), seq_length=loaded_export.seq_length)
    for variant in tflite_convert.VARIANTS:
        path, _ = converted[f"text_{variant}"]
        tokenize = make_interpreter(model_path=path).get_signature_runner("tokenize")
        got = tokenize(text=np.array([t.encode() for t in texts], dtype=object))
        for key in ("token_ids", "segment_ids", "padding_mask"):
            np.testing.assert_array_equal(got[key], tf.cast(want[key], tf.int32).numpy(), err_msg=f"{variant} {key}")


def test_text_form_carries_no_detokenization_data(converted, loaded_export):
    import tensorflow_text as tft

    from llm_tf.export import tflite_metadata

    tokenizer = loaded_export.tokenizer

    def model_bytes(detokenization: bool) -> int:
        fast = tft.FastBertTokenizer(vocab=list(tokenizer.vocab), token_out_type=tf.int32, unknown_token="[UNK]",
                                     lower_case_nfd_strip_accents=tokenizer.lower_case,
                                     support_detokenization=detokenization)
        return int(fast._fast_wordpiece_tokenizer._model.shape[0] + fast._fast_bert_normalizer._model.shape[0])

    with_vocab, without = model_bytes(True), model_bytes(False)
    assert without < with_vocab
    for variant in tflite_convert.VARIANTS:
        path, _ = converted[f"text_{variant}"]
        found = tflite_metadata.size_breakdown(open(path, "rb").read())["tokenizer_models"]
        assert without <= found < without + 64, (variant, found, without)  # + the ops' small int constants


def test_full_int8_with_float_ops_keeps_those_ops_float(loaded_export):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    texts, _, _ = eval_texts(48)
    calibration = eval_texts(200)[0][48:80] or texts
    conversion = tflite_convert.convert_variant(loaded_export, "tokens", "full_int8", calibration, ["attention"])
    assert conversion.notes == ["op types kept in float32: BATCH_MATMUL, SOFTMAX, SELECT_V2, TRANSPOSE, RESHAPE, "
                                "BROADCAST_TO"]
    model = flatbuffer_utils.convert_bytearray_to_object(conversion.content)
    graph = model.subgraphs[0]
    softmax_outputs = [graph.tensors[op.outputs[0]].type for op in graph.operators
                       if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == "SOFTMAX"]
    fully_connected = [graph.tensors[op.outputs[0]].type for op in graph.operators
                       if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == "FULLY_CONNECTED"]
    assert softmax_outputs and set(softmax_outputs) == {schema.TensorType.FLOAT32}
    assert schema.TensorType.INT8 in fully_connected
    runner = make_interpreter(model_content=conversion.content).get_signature_runner()
    packed = loaded_export.tokenize(texts)
    label_ids = [int(runner(**{k: v[i:i + 1] for k, v in packed.items()})["label_ids"][0]) for i in range(len(texts))]
    assert np.mean(np.array(label_ids) == loaded_export.serve(texts)["label_ids"]) >= MIN_AGREEMENT["full_int8"]
    with pytest.raises(ConfigError, match="float ops must be TFLite op type names"):
        tflite_convert.convert_variant(loaded_export, "tokens", "full_int8", calibration, ["softmax"])
    assert tflite_convert.expand_float_ops(["SOFTMAX", "attention"])[:2] == ["SOFTMAX", "BATCH_MATMUL"]


def test_missing_signature_is_one_line(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda text: {"scores": tf.zeros([tf.shape(text)[0], 2])},
                           input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.f.get_concrete_function()})
    with pytest.raises(ConfigError, match="has no 'predict_tokens' signature \\(has: serving_default\\)"):
        export_dir.load_exported(str(tmp_path / "1"))
    with pytest.raises(DataError, match="not a SavedModel version directory"):
        export_dir.load_exported(str(tmp_path))


def test_full_int8_without_representative_texts_is_refused(loaded_export):
    with pytest.raises(DataError, match="representative dataset is empty"):
        tflite_convert.convert_variant(loaded_export, "tokens", "full_int8", [])
    with pytest.raises(DataError, match="representative dataset is empty"):
        tflite_convert.representative_dataset(loaded_export, "tokens", [])
    with pytest.raises(ConfigError, match="unknown variant 'int4'"):
        tflite_convert.convert_variant(loaded_export, "tokens", "int4")


def test_unsupported_ops_are_named():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def shout(text):
        return tf.strings.upper(tf.strings.regex_replace(text, "a", "b"))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([shout.get_concrete_function()])
    with pytest.raises(tflite_convert.UnsupportedOpsError) as error:
        tflite_convert.run_converter(converter, "demo")
    assert error.value.ops == ["StaticRegexReplace", "StringUpper"]
    assert str(error.value).startswith(
        "demo: the TFLite converter does not support op(s) StaticRegexReplace, StringUpper")
    assert "\n" not in str(error.value)


def test_unsupported_ops_parser_reads_calibrator_messages():
    message = ("Failed to initialize op resolver for calibration:\nThere are unresolved custom ops: "
               "[RaggedTensorToTensor, FastWordpieceTokenizeWithOffsets]"
               "Encountered unresolved custom op: FastBertNormalize.")
    assert tflite_convert.unsupported_ops(message) == ["FastBertNormalize", "FastWordpieceTokenizeWithOffsets",
                                                       "RaggedTensorToTensor"]
    assert tflite_convert.unsupported_ops("something else went wrong") == []


def test_other_converter_failures_are_one_line():
    class Broken:
        def convert(self):
            raise ValueError("first line\nsecond line")

    with pytest.raises(LlmTfError, match="^demo: TFLite conversion failed: first line$"):
        tflite_convert.run_converter(Broken(), "demo")
