"""ExampleGen's executor alone: the shipped sample prepared into the ``examples`` directory with its
counts, labels and file hashes; a TransferSetGen artifact as the first training input and a
Transform artifact's vocabulary; missing files and artifact properties named."""

import json
import os

import pytest

from llm_tf.errors import DataError
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.components import ExampleGen
from llm_tf.pipeline.errors import PipelineError
from llm_tf.pipeline.fingerprint import file_sha256
from llm_tf.text.tokenizer import load_vocab
from tests.conftest import SST2_SAMPLE
from tests.pipeline.components.harness import artifact, execute, ref

TRAIN, DEV = str(SST2_SAMPLE / "train.tsv"), str(SST2_SAMPLE / "dev.tsv")
TRANSFER = ref(artifacts.TRANSFER_SET, "TransferSetGen", "transfer_set")
GRAPH = ref(artifacts.TRANSFORM_GRAPH, "Transform", "transform_graph")
TRANSFER_ROWS = ["a warm and witty film\t1\tlabelled", "a tedious mess\t0\tlabelled", "so much fun\t1\taugmented"]


def _transfer_set(directory) -> str:
    """A TransferSetGen artifact directory: ``transfer_set.tsv`` with 3 rows."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "transfer_set.tsv"), "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\tsource\n" + "\n".join(TRANSFER_ROWS) + "\n")
    return str(directory)


def test_the_sample_is_prepared_with_counts_labels_and_file_hashes(tmp_path):
    run = execute(ExampleGen(inputs=[TRAIN], eval_inputs=[DEV], text_field="sentence", vocab_size=200), tmp_path)
    out = run.outputs["examples"]
    props = run.props("examples")
    assert props["counts"] == {"train": 60, "eval": 16} and props["rejected"] == 0
    assert props["labels"] == ["0", "1"] and props["task"] == "classification"
    assert props["features"] == ["text", "label"]
    assert props["data_files"] == {TRAIN: file_sha256(TRAIN), DEV: file_sha256(DEV)}
    assert props["preset"] == "" and props["vocab_origin"] == "trained on the train split (wordpiece)"
    assert props["vocab_size"] == len(load_vocab(os.path.join(out, "tokenizer", "vocab.txt"))) <= 200
    assert run.result.metrics == {"train_examples": 60, "eval_examples": 16, "rejected": 0}
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        assert json.load(f)["task"] == "classification"
    assert {"statistics.json", "schema.json", "labels.txt", "tokenizer", "examples"} <= set(os.listdir(out))
    assert props["plots"] == ["token_lengths.png", "label_counts.png"]
    assert all(os.path.isfile(os.path.join(out, name)) for name in props["plots"])


def test_a_transfer_set_and_a_vocabulary_from_other_components(tmp_path, vocab_dir):
    transfer = _transfer_set(tmp_path / "transfer")               # no "path" property: the file in its URI
    vocab = os.path.join(vocab_dir, "vocab.txt")
    graph = artifact(artifacts.TRANSFORM_GRAPH, tmp_path / "graph", vocab_file=vocab, lower_case=True,
                     kind="wordpiece", vocab_origin="trained on CORPUS")
    gen = ExampleGen(transfer_set=TRANSFER, vocabulary=GRAPH, inputs=[TRAIN], eval_inputs=[DEV])
    run = execute(gen, tmp_path / "run", {"transfer_set": artifact(artifacts.TRANSFER_SET, transfer),
                                          "vocabulary": graph})
    props = run.props("examples")
    assert props["counts"] == {"train": 63, "eval": 16}
    path = os.path.join(transfer, "transfer_set.tsv")
    assert props["data_files"] == {path: file_sha256(path), TRAIN: file_sha256(TRAIN), DEV: file_sha256(DEV)}
    prepared_vocab = os.path.join(run.outputs["examples"], "tokenizer", "vocab.txt")
    assert load_vocab(prepared_vocab) == load_vocab(vocab) and props["vocab_size"] == len(load_vocab(vocab))
    assert props["vocab_origin"].endswith(f"; the vocabulary of {tmp_path / 'graph'} (trained on CORPUS)")


def test_a_transfer_set_with_a_path_property_is_read_there(tmp_path):
    elsewhere = os.path.join(_transfer_set(tmp_path / "elsewhere"), "transfer_set.tsv")
    run = execute(ExampleGen(transfer_set=TRANSFER, eval_inputs=[DEV], vocab_size=100), tmp_path / "run",
                  {"transfer_set": artifact(artifacts.TRANSFER_SET, tmp_path / "empty", path=elsewhere)})
    props = run.props("examples")
    assert props["counts"] == {"train": 3, "eval": 16} and elsewhere in props["data_files"]


def test_a_missing_input_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"/missing.tsv: no such file"):
        execute(ExampleGen(inputs=[str(tmp_path / "missing.tsv")], text_field="sentence"), tmp_path)


def test_a_transfer_set_artifact_without_its_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"/empty/transfer_set.tsv: no such file"):
        execute(ExampleGen(transfer_set=TRANSFER, eval_inputs=[DEV]), tmp_path,
                {"transfer_set": artifact(artifacts.TRANSFER_SET, tmp_path / "empty")})


def test_a_vocabulary_artifact_without_its_properties_is_named(tmp_path):
    graph = artifact(artifacts.TRANSFORM_GRAPH, tmp_path / "graph", lower_case=True, kind="wordpiece")
    with pytest.raises(PipelineError, match=r"input 'vocabulary' \(TransformGraph at .*/graph\) has no property "
                                            "'vocab_file'"):
        execute(ExampleGen(vocabulary=GRAPH, inputs=[TRAIN], text_field="sentence"), tmp_path, {"vocabulary": graph})


def test_an_unknown_prepare_option_is_refused_at_definition():
    with pytest.raises(PipelineError, match=r"component Gen: unknown prepare option\(s\) vocabulary_size \(known: "):
        ExampleGen(name="Gen", inputs=[TRAIN], vocabulary_size=100)
