"""Tests for llm_tf/data/beam_prepare.py: ``llm_prepare --runner=DirectRunner`` writes what the in-process path writes.

Each case prepares the same inputs both ways and compares every file byte for byte (shards,
vocabulary, labels, statistics, schema, charts, rejected rows); ``summary.json`` differs only
in the run's details (time, output path, runner).
"""

import gzip
import json
import re
import subprocess
import sys
import uuid

import pytest
import tensorflow as tf

pytest.importorskip("apache_beam")

from llm_tf.data import beam_prepare, beam_transforms, statistics  # noqa: E402
from llm_tf.data.prepare import PrepareConfig, prepare  # noqa: E402
from llm_tf.errors import BadRowError, ConfigError, DataError  # noqa: E402
from tests.bin.start_line import without_start_line  # noqa: E402
from tests.conftest import REPO  # noqa: E402

SST2_SAMPLE = REPO / "samples" / "sst2_sample"
CONLL_SAMPLE = REPO / "samples" / "conll_sample"
SUMMARY = "summary.json"


def files(top: str) -> dict[str, bytes]:
    """Relative path -> contents of every file under ``top`` (local or ``ram://``)."""
    found = {}
    for directory, _, names in tf.io.gfile.walk(top):
        for name in names:
            path = f"{directory.rstrip('/')}/{name}"
            with tf.io.gfile.GFile(path, "rb") as f:
                found[path[len(top.rstrip('/')) + 1:]] = f.read()
    return found


def assert_same_output(beam_dir: str, local_dir: str, replace: tuple[str, str] = ("", "")) -> dict[str, bytes]:
    """Every file of the two directories is equal (``summary.json`` up to the run's details)."""
    ours, theirs = files(beam_dir), files(local_dir)
    assert sorted(ours) == sorted(theirs)
    for name in sorted(set(ours) - {SUMMARY}):
        expected = theirs[name].replace(replace[0].encode(), replace[1].encode()) if replace[0] else theirs[name]
        assert ours[name] == expected, name
    summaries = [beam_prepare.summary_without_run_details(json.loads(d[SUMMARY])) for d in (ours, theirs)]
    for summary in summaries:
        for key in ("inputs", "eval_inputs"):
            summary["config"][key] = [p.replace(replace[0], replace[1]) if replace[0] else p
                                      for p in summary["config"][key]]
    assert summaries[0] == summaries[1]
    return ours


def both(tmp_path, name: str, **options):
    """Prepares with ``options`` in-process and on the DirectRunner; returns (beam, local) results and dirs."""
    local = str(tmp_path / f"{name}_local")
    beam = str(tmp_path / f"{name}_beam")
    local_result = prepare(PrepareConfig(output_dir=local, **options))
    beam_result = prepare(PrepareConfig(output_dir=beam, runner="DirectRunner", **options))
    return beam_result, local_result, beam, local


def test_the_shipped_sample_is_prepared_identically(tmp_path):
    beam_result, local_result, beam, local = both(
        tmp_path, "sst2", inputs=[str(SST2_SAMPLE / "train.tsv")], eval_inputs=[str(SST2_SAMPLE / "dev.tsv")],
        text_field="sentence", vocab_size=200)
    written = assert_same_output(beam, local)
    assert beam_result.counts == local_result.counts == {"train": 60, "eval": 16}
    assert beam_result.statistics == local_result.statistics and beam_result.labels == local_result.labels == ["0",
                                                                                                             "1"]
    assert not any(name.startswith(".") or "/." in name for name in written)  # no scratch or partial file left
    assert json.loads(written[SUMMARY])["config"]["runner"] == "DirectRunner"


PAIRS = ("premise\thypothesis\tlabel\n"
         "a cat sat\ton a mat\tyes\n"
         "too few columns\n"
         "a dog ran\tin a park\tno\n"
         "a cat sat\ton a mat\tyes\n"          # a duplicate
         "\tan empty premise\tno\n"
         "the sun rose\tover the hill\tyes\n")
MORE_PAIRS = ("premise\thypothesis\tlabel\n"
              "bad \xff byte\there\tno\n"
              "birds sang\tat dawn\tyes\n"
              "rain fell\ton the roof\tno\n"
              "rain fell\ton the roof\tno\n")
DEV_PAIRS = ("premise\thypothesis\tlabel\n"
             "a cat sat\ton a mat\tyes\n"            # also in train: overlap
             "snow fell\ton the road\tmaybe\n"
             "wind blew\tthrough trees\tno\n")


def test_pairs_duplicates_overlap_shards_and_skipped_rows_are_identical(tmp_path, write):
    write("in/a.tsv", PAIRS)
    (tmp_path / "in" / "b.tsv").write_bytes(MORE_PAIRS.encode("latin-1"))
    write("dev.tsv", DEV_PAIRS)
    beam_result, local_result, beam, local = both(
        tmp_path, "pairs", inputs=[str(tmp_path / "in" / "*.tsv")], eval_inputs=[str(tmp_path / "dev.tsv")],
        text_field="premise", text_pair_field="hypothesis", vocab_size=60, bad_rows="skip", num_shards=3)
    written = assert_same_output(beam, local)
    assert beam_result.counts == {"train": 7, "eval": 3} and beam_result.rejected == 3
    train, evaluation = beam_result.statistics["train"], beam_result.statistics["eval"]
    assert train["duplicates"] == 2 and evaluation["overlap_with_train"] == 1 and "pair_chars" in train
    assert sorted(n for n in written if n.startswith("examples/train")) == [
        f"examples/train-0000{i}-of-00003.tfrecord" for i in range(3)]
    rejected = [json.loads(line) for line in written["rejected.jsonl"].decode().splitlines()]
    assert [(r["file"].rsplit("/", 1)[1], r["line"]) for r in rejected] == [("a.tsv", 3), ("a.tsv", 6), ("b.tsv", 2)]
    assert rejected[2]["reason"] == "invalid UTF-8 in column 'premise'" and "\\xff" in rejected[2]["raw"]
    assert beam_result.statistics["rejected"] == local_result.statistics["rejected"]


def test_the_hash_split_of_one_jsonl_file_is_identical(tmp_path, write):
    rows = [{"text": f"example number {i} " + "word " * (i % 7), "label": str(i % 3)} for i in range(120)]
    rows += [{"text": "example number 5 " + "word " * 5, "label": "2"}]  # a duplicate lands where its twin does
    path = write("all.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    beam_result, local_result, beam, local = both(tmp_path, "hash", inputs=[path], eval_percent=25.0, vocab_size=80,
                                                  num_shards=2, split_salt="beam")
    assert_same_output(beam, local)
    assert beam_result.counts == local_result.counts and sum(beam_result.counts.values()) == 121
    assert beam_result.statistics["eval"]["overlap_with_train"] == 0


def test_token_classification_is_identical(tmp_path):
    _, _, beam, local = both(tmp_path, "conll", task="token_classification", inputs=[str(CONLL_SAMPLE / "train.txt")],
                             eval_inputs=[str(CONLL_SAMPLE / "dev.txt")], lower_case=False, vocab_size=300)
    assert_same_output(beam, local)


@pytest.mark.parametrize("options", [{"tokenizer": "sentencepiece", "vocab_size": 120},
                                     {"vocab_file": "given"}], ids=["sentencepiece", "vocab_file"])
def test_vocabularies_learnt_in_the_driver_or_given_are_identical(tmp_path, vocab_dir, options):
    if options.get("vocab_file") == "given":
        options = {"vocab_file": f"{vocab_dir}/vocab.txt"}
    _, _, beam, local = both(tmp_path, "vocab", inputs=[str(SST2_SAMPLE / "train.tsv")],
                             eval_inputs=[str(SST2_SAMPLE / "dev.tsv")], text_field="sentence", **options)
    assert_same_output(beam, local)


def test_a_bad_row_fails_with_the_in_process_error_and_writes_nothing(tmp_path, write):
    write("in/a.tsv", "sentence\tlabel\nfine\t1\nalso fine\t0\nno label column\n")
    write("in/b.tsv", "sentence\tlabel\n\t1\n")  # bad too, but read after a.tsv
    options = dict(inputs=[str(tmp_path / "in" / "*.tsv")], text_field="sentence", vocab_size=60)
    with pytest.raises(BadRowError) as local:
        prepare(PrepareConfig(output_dir=str(tmp_path / "local"), **options))
    with pytest.raises(BadRowError) as beam:
        prepare(PrepareConfig(output_dir=str(tmp_path / "beam"), runner="DirectRunner", **options))
    assert str(beam.value) == str(local.value) == (
        f"{tmp_path}/in/a.tsv:4: wrong column count: expected 2, got 1 "
        "(use --bad_rows=skip to skip bad rows and write them to a file)")
    assert beam.value.problem == local.value.problem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written, no temporary directory left


def test_no_usable_training_example_is_the_in_process_error(tmp_path, write):
    path = write("bad.tsv", "sentence\tlabel\n\t1\none column\n")
    messages = []
    for runner in ("", "DirectRunner"):
        with pytest.raises(DataError) as error:
            prepare(PrepareConfig(output_dir=str(tmp_path / f"out{runner}"), inputs=[path], text_field="sentence",
                                  bad_rows="skip", runner=runner))
        messages.append(str(error.value))
    assert messages[0] == messages[1] == f"no usable training example in {path} (2 rows rejected)"


def test_bucket_paths_through_tensorflow_file_systems(tmp_path):
    """Inputs and output on ram:// (a non-local gfile file system): workers read and write through tf.io.gfile."""
    root = f"ram://beam-prepare-{uuid.uuid4().hex}"
    for name in ("train.tsv", "dev.tsv"):
        with tf.io.gfile.GFile(f"{root}/in/{name}.gz", "wb") as f:
            f.write(gzip.compress((SST2_SAMPLE / name).read_bytes()))
    options = dict(text_field="sentence", vocab_size=200, num_shards=2)
    prepare(PrepareConfig(output_dir=f"{root}/out", inputs=[f"{root}/in/train.tsv.gz"],
                          eval_inputs=[f"{root}/in/dev.tsv.gz"], runner="DirectRunner", **options))
    prepare(PrepareConfig(output_dir=str(tmp_path / "local"), inputs=[str(SST2_SAMPLE / "train.tsv")],
                          eval_inputs=[str(SST2_SAMPLE / "dev.tsv")], **options))
    ours, theirs = files(f"{root}/out"), files(str(tmp_path / "local"))
    assert sorted(ours) == sorted(theirs)
    for name in sorted(set(ours) - {SUMMARY}):
        assert ours[name] == theirs[name], name
    assert [n for n in tf.io.gfile.listdir(root) if n.strip("/") not in ("in", "out")] == []  # no temporary directory


@pytest.mark.parametrize("options, message", [
    ({"runner": "NoSuchRunner"}, "--runner must be empty (in-process) or one of DirectRunner, DataflowRunner"),
    ({"beam_pipeline_args": ["--direct_num_workers=2"]}, "--beam_pipeline_args are options of a Beam runner"),
    ({"runner": "DataflowRunner"}, "--runner=DataflowRunner: its workers cannot write to the local --output_dir"),
])
def test_runner_options_are_checked(tmp_path, options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        prepare(PrepareConfig(output_dir=str(tmp_path / "out"), inputs=[str(SST2_SAMPLE / "train.tsv")],
                              text_field="sentence", **options))


def test_without_beam_the_runner_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # "import apache_beam" raises ImportError
    with pytest.raises(ConfigError) as error:
        prepare(PrepareConfig(output_dir=str(tmp_path / "out"), inputs=[str(SST2_SAMPLE / "train.tsv")],
                              text_field="sentence", runner="DirectRunner"))
    assert str(error.value) == "--runner needs apache-beam: pip install 'llm-tf[beam]'"
    assert not (tmp_path / "out").exists()


def test_without_beam_the_binary_prints_one_line_and_exits_1(tmp_path):
    hide_beam = ("import sys; sys.modules['apache_beam'] = None; from llm_tf.bin.prepare import run; "
                 "sys.argv[0] = 'llm_prepare'; run()")
    done = subprocess.run([sys.executable, "-c", hide_beam, f"--input={SST2_SAMPLE / 'train.tsv'}",
                           "--text_field=sentence", f"--output_dir={tmp_path / 'out'}", "--runner=DirectRunner"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert without_start_line(done.stderr).splitlines() == [
        "llm_prepare: error: --runner needs apache-beam: pip install 'llm-tf[beam]'"]
    assert not (tmp_path / "out").exists()


def test_the_shard_plan_places_examples_as_the_round_robin_writer():
    config = PrepareConfig(output_dir="", num_shards=3)
    plan = beam_transforms.shard_plan([(1, {"train": 4, "eval": 0}), (0, {"train": 3, "eval": 2})], config)
    assert plan["counts"] == {"train": 7, "eval": 2} and plan["shards"] == {"train": 3, "eval": 3}
    placed = [beam_transforms.place(("train", index, rank, {}), plan)[1:3]
              for index, n in ((0, 3), (1, 4)) for rank in range(n)]
    assert placed == [(g % 3, g // 3) for g in range(7)]


def test_counted_lengths_summarize_as_numpy_does():
    """The mergeable summaries equal numpy's percentiles and mean over the expanded lengths, bit for bit."""
    import numpy as np

    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 10, 99, 1000, 4321):
        lengths = rng.integers(0, rng.choice([2, 40, 5000]), size)
        counted = statistics.summarize_length_counts(statistics.count_lengths(lengths))
        assert counted["mean"] == round(float(lengths.mean()), 2)
        for p, value in zip(statistics.PERCENTILES, np.percentile(lengths, statistics.PERCENTILES)):
            assert counted[f"p{p}"] == round(float(value), 2)


def test_the_pipeline_example_gen_takes_the_runner_as_a_prepare_option(tmp_path):
    """ExampleGen passes PrepareConfig fields to ``prepare``, so ``runner`` needs no code of its own."""
    from llm_tf.pipeline.components import ExampleGen
    from tests.pipeline.components.harness import execute

    options = dict(inputs=[str(SST2_SAMPLE / "train.tsv")], eval_inputs=[str(SST2_SAMPLE / "dev.tsv")],
                   text_field="sentence", vocab_size=200)
    beam = execute(ExampleGen(runner="DirectRunner", **options), tmp_path / "beam")
    local = execute(ExampleGen(**options), tmp_path / "local")
    assert beam.props("examples")["counts"] == local.props("examples")["counts"] == {"train": 60, "eval": 16}
    assert_same_output(beam.outputs["examples"], local.outputs["examples"])


def test_records_are_serialized_in_the_same_bytes_whatever_the_key_order():
    from llm_tf.data import tfrecords

    one = tfrecords.serialize_example({"text": "a fine film", "label": "1"})
    assert one == tfrecords.serialize_example({"label": "1", "text": "a fine film"})
    assert tfrecords.from_tf_example(one) == {"text": "a fine film", "label": "1"}


def test_a_tfds_data_set_is_read_on_the_workers_identically(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tests.data.test_tfds_source import _conll_examples

    with tfds.testing.mock_data(as_dataset_fn=lambda builder, split, **kw: _conll_examples(builder, split)):
        beam_result, local_result, beam, local = both(tmp_path, "tfds", tfds="conll2003", vocab_size=60)
    assert beam_result.counts == local_result.counts == {"train": 2, "eval": 2}
    assert_same_output(beam, local)
