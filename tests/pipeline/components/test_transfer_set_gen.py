"""TransferSetGen, and ExampleGen preparing its transfer set with a Transform's vocabulary (cut);
then TransferSetGen's executor alone.

The checkpoint is a tiny Hugging Face BERT directory over the vocabulary llm_prepare learned on
the shipped sample (tests/preset_fixtures.py); its random embeddings give random, but real,
replacement words.
"""

import io
import json
import os
import shutil

import pytest

from llm_tf.errors import DataError
from llm_tf.pipeline import artifacts
from llm_tf.pipeline.component import OutputRef
from llm_tf.pipeline.components import ExampleGen, TransferSetGen, Transform
from llm_tf.pipeline.components.transfer_set_gen import transfer_file
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.errors import ComponentFailedError, PipelineError
from llm_tf.pipeline.fingerprint import file_sha256
from llm_tf.pipeline.runner import LocalRunner
from llm_tf.text.tokenizer import load_vocab
from tests.conftest import SST2_SAMPLE
from tests.pipeline.components.harness import artifact, execute
from tests.preset_fixtures import save_hf_bert_directory

TRAIN, DEV = str(SST2_SAMPLE / "train.tsv"), str(SST2_SAMPLE / "dev.tsv")
TRANSFER = OutputRef("TransferSetGen", "transfer_set", artifacts.TRANSFER_SET)
GRAPH = OutputRef("Transform", "transform_graph", artifacts.TRANSFORM_GRAPH)


@pytest.fixture(scope="module")
def checkpoint(prepared_sample, tmp_path_factory) -> str:
    vocab = load_vocab(os.path.join(prepared_sample, "tokenizer", "vocab.txt"))
    return save_hf_bert_directory(str(tmp_path_factory.mktemp("hf") / "bert"), vocab)


def _run(root, components):
    return LocalRunner(out=io.StringIO()).run(Pipeline("p", str(root), components))


def test_transfer_set_prepared_with_the_teachers_vocabulary_cut(tmp_path, checkpoint):
    teacher_examples = ExampleGen(inputs=[TRAIN], eval_inputs=[DEV], text_field="sentence", preset=checkpoint)
    transform = Transform(teacher_examples.output("examples"))
    transfer = TransferSetGen(labelled=[os.path.relpath(TRAIN)], exclude=[DEV], augment_copies=2, preset=checkpoint)
    student = ExampleGen(transfer_set=transfer.output("transfer_set"), vocabulary=transform.output("transform_graph"),
                         eval_inputs=[DEV], vocab_cut=150, name="StudentExampleGen")
    assert transfer.properties["labelled"] == [TRAIN] and transfer.properties["neighbours"] == 15   # absolute, defaults
    assert student.properties["text_field"] == "sentence" and student.properties["label_field"] == "label"
    result = _run(tmp_path, [teacher_examples, transform, transfer, student])

    artifact = result["TransferSetGen"].outputs["transfer_set"]
    props = artifact.properties
    assert props["path"] == os.path.join(artifact.uri, "transfer_set.tsv") and os.path.isfile(props["path"])
    assert os.path.isfile(props["summary_file"]) and props["counts"]["labelled"] == 60
    assert props["counts"]["augmented"] > 0 and props["rows"] == sum(props["counts"].values())
    assert set(props["data_files"]) == {TRAIN, DEV} and props["augmentation"]["copies"] == 2
    assert result["TransferSetGen"].metrics["rows"] == props["rows"]

    examples = result["StudentExampleGen"].outputs["examples"]
    assert examples.properties["counts"] == {"train": props["rows"], "eval": 16}
    assert props["path"] in examples.properties["data_files"] and DEV in examples.properties["data_files"]
    with open(os.path.join(examples.uri, "tokenizer", "vocab_cut.json"), encoding="utf-8") as f:
        cut = json.load(f)
    graph = result["Transform"].outputs["transform_graph"].properties
    assert cut["source_vocab_file"] == graph["vocab_file"] and examples.properties["vocab_size"] <= 150
    assert examples.properties["vocab_origin"].startswith("cut to ")
    graph_uri = result["Transform"].outputs["transform_graph"].uri
    assert f"the vocabulary of {graph_uri}" in examples.properties["vocab_origin"]


def test_the_key_covers_the_input_files_and_with_augmentation_the_checkpoint(tmp_path, checkpoint):
    train = tmp_path / "train.tsv"
    shutil.copy(TRAIN, train)
    plain = TransferSetGen(labelled=[str(train)], exclude=[DEV]).extra_fingerprint()
    assert set(plain) == {str(train), DEV}
    augmented = TransferSetGen(labelled=[str(train)], exclude=[DEV], augment_copies=1, preset=checkpoint)
    assert set(augmented.extra_fingerprint()) == {str(train), DEV, "preset_weights", "preset_vocab"}
    with open(train, "a", encoding="utf-8") as f:
        f.write("a brand new sentence\t1\n")
    assert TransferSetGen(labelled=[str(train)], exclude=[DEV]).extra_fingerprint()[str(train)] != plain[str(train)]
    copy = shutil.copytree(checkpoint, tmp_path / "bert")
    before = TransferSetGen(labelled=[str(train)], augment_copies=1, preset=str(copy)).extra_fingerprint()
    save_hf_bert_directory(str(tmp_path / "other"), load_vocab(os.path.join(checkpoint, "vocab.txt")), seed=5)
    shutil.copy(tmp_path / "other" / "model.safetensors", copy / "model.safetensors")
    after = TransferSetGen(labelled=[str(train)], augment_copies=1, preset=str(copy)).extra_fingerprint()
    assert after["preset_weights"] != before["preset_weights"] and after["preset_vocab"] == before["preset_vocab"]


def test_bad_options_and_a_missing_file(tmp_path):
    with pytest.raises(PipelineError, match=r"unknown transfer set option\(s\) augment \(known: augment_copies"):
        TransferSetGen(labelled=[TRAIN], augment=2)
    with pytest.raises(PipelineError, match="give at least one labelled file"):
        TransferSetGen(exclude=[DEV])
    with pytest.raises(ComponentFailedError, match=r"DataError: .*/missing.tsv: no such file \(--labelled\)"):
        _run(tmp_path / "root", [TransferSetGen(labelled=[str(tmp_path / "missing.tsv")])])
    assert os.listdir(tmp_path / "root" / "TransferSetGen" / "transfer_set") == []   # nothing published


def test_example_gen_refuses_a_second_vocabulary_and_other_columns_for_a_transfer_set():
    with pytest.raises(PipelineError, match="the vocabulary input sets the vocabulary; drop vocab_file, lower_case"):
        ExampleGen(vocabulary=GRAPH, eval_inputs=[DEV], vocab_file="vocab.txt", lower_case=False)
    with pytest.raises(PipelineError, match="drop preset"):
        ExampleGen(vocabulary=GRAPH, preset="all_minilm_l6_v2")
    with pytest.raises(PipelineError, match="a transfer set's text column is 'sentence', got text_field='text'"):
        ExampleGen(transfer_set=TRANSFER, text_field="text")
    with pytest.raises(PipelineError, match="input 'vocabulary' wants a TransformGraph, got TransferSet"):
        ExampleGen(vocabulary=TRANSFER)


def test_example_gen_cuts_a_checkpoints_vocabulary_too(tmp_path, checkpoint):
    gen = ExampleGen(inputs=[TRAIN], eval_inputs=[DEV], text_field="sentence", preset=checkpoint, vocab_cut=120)
    examples = _run(tmp_path, [gen])["ExampleGen"].outputs["examples"]
    assert examples.properties["vocab_size"] <= 120 < len(load_vocab(os.path.join(checkpoint, "vocab.txt")))
    assert examples.properties["vocab_origin"].startswith(f"preset {checkpoint} (") and ": cut to " in \
        examples.properties["vocab_origin"]
    assert os.path.isfile(os.path.join(examples.uri, "tokenizer", "vocab_cut.json"))


# ----------------------------------------------------------------------------- the executor alone
def test_executor_writes_the_tsv_and_its_summary_with_their_facts(tmp_path):
    run = execute(TransferSetGen(labelled=[TRAIN], exclude=[DEV]), tmp_path)
    props = run.props("transfer_set")
    path = os.path.join(run.outputs["transfer_set"], "transfer_set.tsv")
    assert props["path"] == path and props["summary_file"] == path + ".summary.json"
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0] == "sentence\tlabel\tsource" and len(lines) - 1 == props["rows"] == 60
    assert {line.rsplit("\t", 1)[1] for line in lines[1:]} == {"labelled"}
    assert props["counts"]["labelled"] == 60 and sum(props["counts"].values()) == 60
    assert props["output_sha256"] == file_sha256(path) and props["bad_rows"] == 0
    assert props["data_files"] == {TRAIN: file_sha256(TRAIN), DEV: file_sha256(DEV)}
    assert set(props["labels"]) == {"0", "1"} and props["augmentation"]["copies"] == 0
    with open(props["summary_file"], encoding="utf-8") as f:
        assert json.load(f)["rows"] == 60
    assert run.result.metrics == {"rows": 60, **props["counts"]}
    assert run.messages[0].startswith("60 rows: labelled 60, ")


def test_executor_names_a_missing_labelled_file(tmp_path):
    with pytest.raises(DataError, match=r"/missing.tsv: no such file \(--labelled\)"):
        execute(TransferSetGen(labelled=[str(tmp_path / "missing.tsv")]), tmp_path)
    assert os.listdir(tmp_path / "out" / "transfer_set") == []


def test_transfer_file_is_the_path_property_or_the_file_in_the_artifact(tmp_path):
    assert transfer_file(artifact(artifacts.TRANSFER_SET, tmp_path)) == str(tmp_path / "transfer_set.tsv")
    assert transfer_file(artifact(artifacts.TRANSFER_SET, tmp_path, path="/elsewhere/t.tsv")) == "/elsewhere/t.tsv"
