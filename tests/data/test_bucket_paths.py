"""Data preparation on bucket paths: inputs, outputs and given files on TensorFlow's in-memory ``ram://``
file system (a real non-local gfile file system, per process; no network needed)."""

import gzip
import json
import os
import uuid

import pytest
import tensorflow as tf

from llm_tf import io_utils
from llm_tf.data import labels as labels_lib
from llm_tf.data import readers, tfrecords
from llm_tf.data.prepare import PrepareConfig, prepare
from llm_tf.data.prepared import load_prepared, plot_files, read_json
from llm_tf.errors import ConfigError, DataError
from llm_tf.text.tokenizer import TokenizerConfig
from tests.conftest import REPO

SAMPLE = REPO / "samples" / "sst2_sample"
BAD_ROWS = "sentence\tlabel\na row with a label\t1\na row without one\n"
OPTIONS = dict(text_field="sentence", vocab_size=200, bad_rows="skip", num_shards=2)


def _put(path: str, data: bytes) -> str:
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)
    return path


def _read(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def _files(top: str) -> dict[str, bytes]:
    """Relative path -> contents of every file under ``top`` (local or remote)."""
    found = {}
    for directory, _, names in tf.io.gfile.walk(top):
        for name in names:
            path = f"{directory.rstrip('/')}/{name}"
            found[path[len(top) + 1:]] = _read(path)
    return found


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The SST-2 sample (plus a bad row) prepared from ram:// to ram://, and locally from the same bytes."""
    root = f"ram://bucket-paths-{uuid.uuid4().hex}"
    local = tmp_path_factory.mktemp("local")
    for name, data in (("train.tsv", (SAMPLE / "train.tsv").read_bytes()), ("bad.tsv", BAD_ROWS.encode()),
                       ("dev.tsv", (SAMPLE / "dev.tsv").read_bytes())):
        folder = "eval" if name == "dev.tsv" else "in"
        _put(f"{root}/{folder}/{name}", data)
        (local / folder).mkdir(exist_ok=True)
        (local / folder / name).write_bytes(data)
    cwd = tmp_path_factory.mktemp("cwd")
    here = os.getcwd()
    os.chdir(cwd)
    writer, opened = tf.io.TFRecordWriter, []  # where every TFRecord file of the prepare is written

    def recording_writer(path, *args, **kwargs):
        opened.append(str(path))
        return writer(path, *args, **kwargs)

    tf.io.TFRecordWriter = recording_writer
    try:
        remote = prepare(PrepareConfig(output_dir=f"{root}/out/", inputs=[f"{root}/in/*.tsv"],
                                       eval_inputs=[f"{root}/eval/dev.tsv"], **OPTIONS))
    finally:
        tf.io.TFRecordWriter = writer
        os.chdir(here)
    assert os.listdir(cwd) == []  # no local "ram:" directory
    prepare(PrepareConfig(output_dir=str(local / "out"), inputs=[str(local / "in" / "*.tsv")],
                          eval_inputs=[str(local / "eval" / "dev.tsv")], **OPTIONS))
    return {"root": root, "local": str(local), "remote": remote, "opened": opened}


def test_a_bucket_prepare_writes_what_a_local_one_does(prepared):
    root, local = prepared["root"], prepared["local"]
    assert prepared["remote"].output_dir == f"{root}/out/"  # as given
    assert prepared["remote"].counts == {"train": 61, "eval": 16} and prepared["remote"].rejected == 1
    ours, theirs = _files(f"{root}/out"), _files(f"{local}/out")
    assert sorted(ours) == sorted(theirs) == [
        "examples/eval-00000-of-00002.tfrecord", "examples/eval-00001-of-00002.tfrecord",
        "examples/train-00000-of-00002.tfrecord", "examples/train-00001-of-00002.tfrecord", "label_counts.png",
        "labels.txt", "rejected.jsonl", "schema.json", "statistics.json", "summary.json", "token_lengths.png",
        "tokenizer/tokenizer_config.json", "tokenizer/vocab.txt"]
    for name in sorted(set(ours) - {"summary.json", "rejected.jsonl"}):
        assert ours[name] == theirs[name], name
    assert ours["rejected.jsonl"] == theirs["rejected.jsonl"].replace(f"{local}/in".encode(), f"{root}/in".encode())
    ours, theirs = json.loads(ours["summary.json"]), json.loads(theirs["summary.json"])
    assert ours["config"]["output_dir"] == ours["output_dir"] == f"{root}/out/"
    for summary in (ours, theirs):
        for key in ("output_dir", "seconds"):
            del summary[key]
        for key in ("output_dir", "inputs", "eval_inputs"):
            del summary["config"][key]
    assert ours == theirs
    # The single-shard staging of each split stays on local disk: only the final shards go to the bucket.
    on_bucket = [path for path in prepared["opened"] if path.startswith(root)]
    assert len(on_bucket) == 4 and all("/examples/" in path for path in on_bucket), prepared["opened"]
    assert len(prepared["opened"]) == 6  # plus the two local staging shards (train, eval)
    # Nothing but the output is left on the bucket: no staging shards, no temporary directory.
    assert io_utils.listdir(root) == ["eval", "in", "out"]
    assert io_utils.listdir(f"{root}/out/examples") == sorted(n.split("/")[1] for n in _files(f"{root}/out")
                                                              if n.startswith("examples/"))


def test_training_opens_the_prepared_bucket(prepared):
    out = f"{prepared['root']}/out"
    data = load_prepared(out, seq_length=64)
    assert data.labels == ["0", "1"] and data.task == "classification"
    assert data.tokenizer.vocab_size == prepared["remote"].vocab_size and data.tokenizer.max_seq_length == 64
    assert data.count("train") == 61 and data.count("eval") == 16
    assert [f.rsplit("/", 1)[1] for f in data.files("eval")] == ["eval-00000-of-00002.tfrecord",
                                                                 "eval-00001-of-00002.tfrecord"]
    dataset = tfrecords.read_tfrecords(data.files("train"), data.features, batch_size=32)
    assert sum(int(batch["label"].shape[0]) for batch in dataset) == 61
    assert len(list(tfrecords.read_tfrecords(f"{out}/examples/eval-*", data.features))) == 16
    assert read_json(out, "statistics.json")["eval"]["count"] == 16
    assert plot_files(out) == ["token_lengths.png", "label_counts.png"]
    assert TokenizerConfig.load(f"{out}/tokenizer").max_seq_length == 128
    with pytest.raises(DataError, match=r"^ram://\S+/in: not a prepared data set \(no summary.json"):
        load_prepared(f"{prepared['root']}/in", seq_length=64)


def test_a_given_vocabulary_labels_and_schema_on_a_bucket(prepared, tmp_path):
    out = f"{prepared['root']}/out"
    result = prepare(PrepareConfig(output_dir=str(tmp_path / "given"), inputs=[str(SAMPLE / "train.tsv")],
                                   eval_inputs=[str(SAMPLE / "dev.tsv")], text_field="sentence",
                                   vocab_file=f"{out}/tokenizer/vocab.txt", validate_against=f"{out}/schema.json",
                                   labels=list(labels_lib.parse_labels(f"{out}/labels.txt"))))
    assert (tmp_path / "given" / "tokenizer" / "vocab.txt").read_bytes() == _read(f"{out}/tokenizer/vocab.txt")
    assert result.anomalies == [] and result.labels == ["0", "1"]
    assert json.loads((tmp_path / "given" / "anomalies.json").read_text())["schema"] == f"{out}/schema.json"
    cut = prepare(PrepareConfig(output_dir=str(tmp_path / "cut"), inputs=[str(SAMPLE / "train.tsv")],
                                text_field="sentence", vocab_file=f"{out}/tokenizer/vocab.txt", vocab_cut=150))
    assert cut.vocab_size == 150
    record = json.loads((tmp_path / "cut" / "tokenizer" / "vocab_cut.json").read_text())
    assert record["source_vocab_file"] == f"{out}/tokenizer/vocab.txt"  # not made "absolute" as a local path


def test_label_and_tokenizer_files_missing_on_a_bucket_are_one_line_errors():
    root = f"ram://bucket-paths-{uuid.uuid4().hex}"
    assert labels_lib.parse_labels(_put(f"{root}/labels.txt", b"neg\r\npos\n\n")) == ("neg", "pos")
    with pytest.raises(DataError, match=r"^ram://\S+/nope.txt: no such label file$"):
        labels_lib.parse_labels(f"{root}/nope.txt")
    with pytest.raises(DataError, match=r"^ram://\S+/tokenizer_config.json: no tokenizer config"):
        TokenizerConfig.load(f"{root}/tokenizer")
    TokenizerConfig(max_seq_length=32).save(f"{root}/tokenizer")
    assert TokenizerConfig.load(f"{root}/tokenizer").max_seq_length == 32


def test_readers_stream_bucket_files_gzipped_or_not():
    root = f"ram://bucket-paths-{uuid.uuid4().hex}"
    text = "\ufeffsentence\tlabel\ncafé\t1\r\n\xff bad\t0\n"
    plain = readers.open_source(_put(f"{root}/a.tsv", text.encode("utf-8", "surrogateescape")))
    packed = readers.open_source(_put(f"{root}/a.tsv.gz", gzip.compress(text.encode())))
    for source in (plain, packed):
        assert source.columns == ("sentence", "label")
        assert [item.fields["sentence"] for item in source] == ["café", "\xff bad"]
    conll = readers.open_source(_put(f"{root}/ner.txt", b"-DOCSTART- O\n\nEU B-ORG\nrejects O\n"))
    assert conll.format == "conll" and [item.fields["tokens"] for item in conll] == [["EU", "rejects"]]
    assert readers.expand_patterns([f"{root}/a.*"]) == [f"{root}/a.tsv", f"{root}/a.tsv.gz"]
    with pytest.raises(DataError, match=r"^ram://\S+/b\.tsv: no such file$"):
        readers.open_source(f"{root}/b.tsv")
    with pytest.raises(DataError, match=r"^ram://\S+/empty\.tsv: file is empty$"):
        readers.open_source(_put(f"{root}/empty.tsv", b""))
    with pytest.raises(DataError, match=r"^ram://\S+/c\*\.tsv: no file matches \(--input\)$"):
        readers.expand_patterns([f"{root}/c*.tsv"], "input")


def test_a_failed_sharded_write_on_a_bucket_leaves_no_shard():
    directory = f"ram://bucket-paths-{uuid.uuid4().hex}/examples"
    with pytest.raises(RuntimeError):
        with tfrecords.ShardedWriter(directory, "train", 2) as writer:
            writer.write({"text": "a fine film", "label": "1"})
            raise RuntimeError("killed")
    assert io_utils.listdir(directory) == []
    with pytest.raises(DataError, match=r"^ram://\S+/examples: no TFRecord shards for split 'train'$"):
        tfrecords.split_files(directory, "train")


@pytest.mark.parametrize("field, path, message", [
    ("output_dir", "nope://b/out", "--output_dir: nope://b/out: TensorFlow has no file system for 'nope://' here"),
    ("inputs", ["s3://b/train.tsv"], "--input: s3://b/train.tsv: TensorFlow has no file system for 's3://' here; "
                                     "pip install tensorflow-io adds it"),
    ("vocab_file", "hdfs://b/vocab.txt", "--vocab_file: hdfs://b/vocab.txt: TensorFlow has no file system"),
])
def test_a_scheme_tensorflow_cannot_open_is_refused_before_anything_is_read(tmp_path, monkeypatch, field, path,
                                                                           message):
    monkeypatch.chdir(tmp_path)
    values = dict(output_dir="out", inputs=[str(SAMPLE / "train.tsv")], text_field="sentence", vocab_size=200)
    values[field] = path
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        prepare(PrepareConfig(**values))
    assert os.listdir(tmp_path) == []
