"""Tests for llm_tf/data/transfer_set.py (the library call behind llm_transfer_set)."""

import json
import os

import numpy as np
import pytest

from llm_tf.data import examples, readers
from llm_tf.data.transfer_set import OUTPUT_COLUMNS, SUMMARY_SUFFIX, TransferSetConfig, build_transfer_set, iter_rows
from llm_tf.data.transfer_set_augment import load_token_embeddings, nearest_neighbours
from llm_tf.data.transfer_set_sources import normalise, split_sentences
from llm_tf.errors import ConfigError, DataError
from tests.preset_fixtures import save_hf_bert_directory

# A tiny checkpoint whose neighbours are known: each pair below has nearly equal embeddings.
PAIRS = [("the", "a"), ("good", "great"), ("movie", "film"), ("is", "was"), ("fun", "dull"), ("plot", "story"),
         ("bad", "awful")]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIALS + [w for pair in PAIRS for w in pair] + ["##s", ".", ","]


def save_tiny_preset(directory) -> str:
    """A Hugging Face BERT directory over VOCAB; ``##s`` and ``[UNK]`` copy whole words' embeddings
    (so only the whole-word rule keeps them out of replacements)."""
    from safetensors.numpy import load_file, save_file

    save_hf_bert_directory(str(directory), VOCAB)
    rng = np.random.default_rng(0)
    table = rng.standard_normal((len(VOCAB), 16)).astype(np.float32) * 0.01
    for direction, (first, second) in enumerate(PAIRS):
        table[VOCAB.index(first), direction] += 1.0
        table[VOCAB.index(second), direction] += 0.99
    table[VOCAB.index("##s")] = table[VOCAB.index("movie")] * 1.001
    table[VOCAB.index("[UNK]")] = table[VOCAB.index("good")] * 1.001
    weights_path = os.path.join(str(directory), "model.safetensors")
    tensors = load_file(weights_path)
    tensors["embeddings.word_embeddings.weight"] = table
    save_file(tensors, weights_path)
    return str(directory)


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory) -> str:
    return save_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny_bert")


def tsv(rows, header="sentence\tlabel") -> str:
    return header + "\n" + "".join("\t".join(row) + "\n" for row in rows)


def build(tmp_path, name="out.tsv", **overrides):
    config = TransferSetConfig(**overrides)
    path = str(tmp_path / name)
    return build_transfer_set(config, path), path


def read_output(path):
    return list(iter_rows(path))


# -- normalisation and sentence splitting ---------------------------------------------------------


def test_normalise_ignores_case_punctuation_spacing_and_tokenisation():
    assert normalise("It's a  GREAT film!") == normalise("it 's a great film .") == "itsagreatfilm"
    assert normalise("don't") == normalise("do n't")
    assert normalise("Café") == normalise("cafe")
    assert normalise(" ... ") == ""


def test_split_sentences_strips_br_markup_and_splits_on_sentence_ends():
    review = ('One of the best films. I loved it!<br /><br />The acting, "superb." Really?  Yes'
              '<br/>the <i>end</i> &amp; credits')
    assert split_sentences(review) == [
        "One of the best films.", "I loved it!", 'The acting, "superb."', "Really?", "Yes", "the end & credits"]
    assert split_sentences(review, min_words=4) == ["One of the best films.", "the end & credits"]
    assert split_sentences(review, min_words=1, max_words=2) == ["Really?", "Yes"]
    assert split_sentences("3.5 stars. Fine") == ["3.5 stars.", "Fine"]  # no split inside a number


# -- the build -------------------------------------------------------------------------------------


def test_output_columns_sources_and_summary(tmp_path, write):
    labelled = write("train.tsv", tsv([("a gripping , well-acted film .", "1"), ("dull and lifeless", "0"),
                                       ("", "1"), ("A gripping, well-acted film", "0")]))
    extra = write("reviews.csv", 'review,sentiment\n"Wow, wow. Loved every minute of it!<br />Go see it.",positive\n'
                                 '"Boring, boring. I left early and never looked back.",negative\n')
    summary, out = build(tmp_path, labelled=[labelled], extra=[extra], label_map={"positive": "1", "negative": "0"})
    rows = read_output(out)
    assert sorted(rows) == sorted([
        ("a gripping , well-acted film .", "1", "labelled"), ("dull and lifeless", "0", "labelled"),
        ("Loved every minute of it!", "1", "extra"), ("Go see it.", "1", "extra"),
        ("I left early and never looked back.", "0", "extra"),
    ])
    assert summary["counts"] == {"labelled": 2, "extra": 3, "augmented": 0}
    assert summary["rows"] == 5
    assert summary["labels"] == {"0": 2, "1": 3}
    # The empty row and the case/punctuation duplicate (first occurrence wins, its label kept).
    assert summary["dropped"]["labelled"] == {"duplicate": 1, "empty_text": 1}
    assert summary["duplicates_with_other_label"]["labelled"] == 1
    assert summary["dropped"]["extra"] == {"too_few_words": 2}  # "Wow, wow." and "Boring, boring."
    on_disk = json.loads((tmp_path / ("out.tsv" + SUMMARY_SUFFIX)).read_text())
    assert on_disk["counts"] == summary["counts"] and on_disk["config"]["label_map"] == {"positive": "1",
                                                                                         "negative": "0"}
    assert [i["role"] for i in on_disk["inputs"]] == ["labelled", "extra"]
    assert all(len(i["sha256"]) == 64 for i in on_disk["inputs"])
    # What llm_prepare --text_field=sentence --label_field=label does with it: every row is an example.
    source = readers.open_source(out)
    assert source.columns == OUTPUT_COLUMNS
    spec = examples.TaskSpec(text_field="sentence", label_field="label")
    spec.check_columns(out, source.columns)
    made = [examples.to_example(row, spec) for row in source]
    assert all(isinstance(m, dict) for m in made) and len(made) == 5


def test_label_mapping_and_unmapped_labels_reported_by_file_and_line(tmp_path, write):
    labelled = write("train.tsv", tsv([("a fine piece of work", "1"), ("a total waste of time", "0")]))
    extra = write("extra.csv", "review,sentiment\n"
                               '"A lovely, warm story about friends.",positive\n'          # line 2: mapped
                               '"It is neither good nor bad at all.",neutral\n'            # line 3: unmapped
                               '"This one already uses the label set.",0\n'                # line 4: kept as is
                               '"Another row with an unknown label.",\n'                  # line 5: empty label
                               '"A row whose label breaks the TSV.","posi\ntive"\n')      # line 6: line break
    summary, out = build(tmp_path, labelled=[labelled], extra=[extra], label_map={"positive": "1"})
    rows = {text: (label, source) for text, label, source in read_output(out)}
    assert rows["A lovely, warm story about friends."] == ("1", "extra")
    assert rows["This one already uses the label set."] == ("0", "extra")
    assert "It is neither good nor bad at all." not in rows
    bad = summary["bad_rows"]
    assert bad["count"] == 3
    assert bad["by_reason"] == {"bad label": 1, "empty label": 1, "unmapped label": 1}
    assert bad["rows"][0].startswith(f"{extra}:3: unmapped label 'neutral' (--label_map maps positive; "
                                     "the labelled files' labels are 0, 1)")
    assert bad["rows"][1:] == [f"{extra}:5: empty label in field 'sentiment'",
                               f"{extra}:6: tab or line break in the label in field 'sentiment'"]


def test_reader_problems_are_bad_rows_with_file_and_line(tmp_path, write):
    labelled = write("train.tsv", "sentence\tlabel\ngood enough for me\t1\nno label column here\n")
    summary, _ = build(tmp_path, labelled=[labelled])
    assert summary["bad_rows"]["rows"] == [f"{labelled}:3: wrong column count: expected 2, got 1"]
    assert summary["counts"]["labelled"] == 1


def test_no_eval_text_leaks_from_labelled_extra_or_crops(tmp_path, write, tiny_preset):
    dev = write("dev.tsv", tsv([("a moving and gorgeous tale of love .", "1"),
                                ("it 's a moving , gorgeous tale of loss !", "1"),
                                ("the plot is fun", "1"), ("an unrelated dev sentence", "0")]))
    labelled = write("train.tsv", tsv([
        ("A moving and gorgeous tale of love", "1"),      # the first dev sentence, other case and punctuation
        ("honestly the plot is fun", "1"),                # the third dev sentence is one of its crops
        ("something else entirely here", "0"),
    ]))
    extra = write("extra.csv", 'review,sentiment\n"Watch it. It\'s a moving, gorgeous tale of loss! Truly great stuff.'
                               '",positive\n')
    common = {"labelled": [labelled], "extra": [extra], "label_map": {"positive": "1"}, "augment_copies": 6,
              "replace_prob": 0.0, "crop_prob": 1.0, "min_words": 4, "preset": tiny_preset}
    # Without --exclude, all three dev sentences reach the output (so the test below means something).
    leaky, leaky_out = build(tmp_path, "leaky.tsv", **common)
    dev_rows = [line.split("\t") for line in (tmp_path / "dev.tsv").read_text().splitlines()[1:]]
    dev_keys = {normalise(text) for text, _ in dev_rows}
    leaked = {normalise(text) for text, _, _ in read_output(leaky_out)} & dev_keys
    assert leaked == {normalise("the plot is fun"), normalise("a moving and gorgeous tale of love"),
                      normalise("it's a moving, gorgeous tale of loss!")}
    assert leaky["excluded"] == {"labelled": 0, "extra": 0, "augmented": 0}

    summary, out = build(tmp_path, "clean.tsv", exclude=[dev], **common)
    rows = read_output(out)
    assert not {normalise(text) for text, _, _ in rows} & dev_keys
    assert summary["excluded"]["labelled"] == 1 and summary["excluded"]["extra"] == 1
    assert summary["excluded"]["augmented"] >= 1
    assert summary["exclude_texts"] == 4
    for source in ("labelled", "extra", "augmented"):
        assert summary["dropped"][source].get("eval_text", 0) == summary["excluded"][source]
        # Every candidate is either written or dropped for one counted reason.
        assert summary["candidates"][source] == summary["counts"][source] + sum(summary["dropped"][source].values())
    # An excluded labelled row is never augmented: no copy of the first dev sentence's source.
    assert not [text for text, _, source in rows if source == "augmented" and "gorgeous" in text]
    assert {text for text, _, source in rows if source == "augmented"} <= {
        "honestly the plot is", "something else entirely", "else entirely here"}


def test_augmentation_replaces_only_whole_words_by_their_embedding_neighbours(tmp_path, write, tiny_preset):
    labelled = write("train.tsv", tsv([("The good movie is fun .", "1"), ("a zorblax plot , bad", "0")]))
    summary, out = build(tmp_path, labelled=[labelled], augment_copies=1, replace_prob=1.0, crop_prob=0.0,
                         neighbours=1, preset=tiny_preset)
    augmented = sorted((text, label) for text, label, source in read_output(out) if source == "augmented")
    # Every known word becomes its pair (case kept); unknown words and punctuation stay.
    assert augmented == [("A great film was dull .", "1"), ("the zorblax story , awful", "0")]
    assert summary["augmentation"]["replaced_words"] == 8
    assert summary["augmentation"]["candidate_tokens"] == 14  # the 14 whole words; not ##s, [UNK], . or ,


def test_neighbours_are_nearest_first_and_skip_pieces_and_specials():
    embeddings, vocab, lower_case = load_token_embeddings_from_table()
    table = nearest_neighbours(embeddings, vocab, ["movie", "zorblax", "##s", "[UNK]"], k=3, lower_case=lower_case)
    assert list(table.neighbours) == ["movie"]  # only whole-word tokens of the vocabulary get neighbours
    assert table.neighbours["movie"][0] == "film"
    assert not {"##s", "[UNK]", "movie"} & set(table.neighbours["movie"])


def load_token_embeddings_from_table():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((len(VOCAB), 8)).astype(np.float32)
    table[VOCAB.index("film")] = table[VOCAB.index("movie")] + 0.01
    table[VOCAB.index("##s")] = table[VOCAB.index("movie")]
    table[VOCAB.index("[UNK]")] = table[VOCAB.index("movie")]
    return table, VOCAB, True


def test_embeddings_are_read_from_hf_and_keras_hub_checkpoints(tmp_path, tiny_preset):
    from safetensors.numpy import load_file

    from tests.preset_fixtures import save_bert_preset

    embeddings, vocab, lower_case = load_token_embeddings(tiny_preset)
    assert vocab == VOCAB and lower_case
    np.testing.assert_array_equal(embeddings, load_file(os.path.join(tiny_preset, "model.safetensors"))[
        "embeddings.word_embeddings.weight"])
    prefixed = save_hf_bert_directory(str(tmp_path / "prefixed"), VOCAB, prefix="bert.", seed=3)
    assert load_token_embeddings(prefixed)[0].shape == (len(VOCAB), 16)
    keras_hub_dir = save_bert_preset(str(tmp_path / "keras_hub"), VOCAB)
    embeddings, vocab, _ = load_token_embeddings(keras_hub_dir)
    assert vocab == VOCAB and embeddings.shape == (len(VOCAB), 16) and np.abs(embeddings).sum() > 0


def test_same_inputs_and_seed_give_identical_bytes_and_another_seed_differs(tmp_path, write, tiny_preset):
    sentences = [f"the good movie is fun {i} times" for i in range(20)] + [
        f"a bad plot was dull at {i} points" for i in range(20)]
    labelled = write("train.tsv", tsv([(s, str(i % 2)) for i, s in enumerate(sentences)]))
    common = {"labelled": [labelled], "augment_copies": 3, "replace_prob": 0.5, "crop_prob": 0.5, "neighbours": 2,
              "preset": tiny_preset}
    first, a = build(tmp_path, "a.tsv", **common)
    second, _ = build(tmp_path, "b.tsv", **common)
    third, _ = build(tmp_path, "c.tsv", seed=7, **common)
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    assert first["output_sha256"] == second["output_sha256"] != third["output_sha256"]
    assert (tmp_path / "a.tsv").read_bytes() != (tmp_path / "c.tsv").read_bytes()
    # The rows are shuffled: sources interleave rather than coming in blocks.
    sources = [source for _, _, source in read_output(a)]
    assert sources != sorted(sources, key=("labelled", "extra", "augmented").index)
    assert first["counts"]["augmented"] > 40


def test_max_rows_keeps_labelled_first(tmp_path, write):
    labelled = write("train.tsv", tsv([(f"labelled sentence number {i}", "1") for i in range(5)]))
    extra = write("extra.csv", "review,sentiment\n" + "".join(
        f'"Extra sentence number {i} here.",positive\n' for i in range(5)))
    summary, out = build(tmp_path, labelled=[labelled], extra=[extra], label_map={"positive": "1"}, max_rows=7)
    assert summary["counts"] == {"labelled": 5, "extra": 2, "augmented": 0}
    assert summary["dropped_max_rows"] == 3 and len(read_output(out)) == 7


def test_remote_paths_go_through_gfile(tmp_path):
    import tensorflow as tf

    root = f"ram://transfer_set_test_{os.getpid()}"
    with tf.io.gfile.GFile(f"{root}/train.tsv", "w") as f:
        f.write(tsv([("a fine film indeed", "1"), ("bad , bad , bad", "0")]) + "broken row\n")
    with tf.io.gfile.GFile(f"{root}/dev.tsv", "w") as f:
        f.write(tsv([("Bad, bad, bad!", "0")]))
    summary = build_transfer_set(TransferSetConfig(labelled=[f"{root}/train.tsv"], exclude=[f"{root}/dev.tsv"]),
                                 f"{root}/out/set.tsv")
    with tf.io.gfile.GFile(f"{root}/out/set.tsv") as f:
        assert f.read() == "sentence\tlabel\tsource\na fine film indeed\t1\tlabelled\n"
    assert summary["excluded"]["labelled"] == 1
    # Bad rows name the remote file, not a local copy.
    assert summary["bad_rows"]["rows"] == [f"{root}/train.tsv:4: wrong column count: expected 2, got 1"]
    assert tf.io.gfile.exists(f"{root}/out/set.tsv{SUMMARY_SUFFIX}")


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case, error, message", [
    ("missing", DataError, "{dir}/nope.tsv: no such file (--labelled)"),
    ("empty", DataError, "{dir}/empty.tsv: file is empty (--labelled)"),
    ("header_only", DataError, "{dir}/header.tsv: no rows, only a header (--labelled)"),
    ("missing_field", DataError, ("{dir}/train.tsv: missing text field 'text' (fields: sentence, label; "
                                  "choose another with --text_field)")),
    ("missing_extra_field", DataError, ("{dir}/extra.csv: missing text field 'review' (fields: text, sentiment; "
                                        "choose another with --extra_text_field)")),
    ("exclude_nothing", DataError, "{dir}/dev.tsv: no text to exclude in field 'sentence' (--exclude)"),
    ("no_preset", ConfigError, "--augment_copies=2 needs --preset"),
    ("output_is_input", ConfigError, "--output={dir}/train.tsv: would overwrite the --labelled file {dir}/train.tsv"),
    ("not_tsv", ConfigError, "--output={dir}/out.csv: must end in .tsv"),
    ("no_labelled", ConfigError, "give at least one labelled file (--labelled)"),
    ("exclude_is_labelled", ConfigError, "{dir}/train.tsv: is both an --exclude file and a --labelled file"),
])
def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path, write, case, error, message):
    train = write("train.tsv", tsv([("a perfectly fine sentence", "1")]))
    write("empty.tsv", "")
    write("header.tsv", "sentence\tlabel\n")
    write("extra.csv", 'text,sentiment\n"Some text here.",positive\n')
    write("dev.tsv", tsv([("", "1")]))
    config = {
        "missing": {"labelled": [str(tmp_path / "nope.tsv")]},
        "empty": {"labelled": [str(tmp_path / "empty.tsv")]},
        "header_only": {"labelled": [str(tmp_path / "header.tsv")]},
        "missing_field": {"labelled": [train], "text_field": "text"},
        "missing_extra_field": {"labelled": [train], "extra": [str(tmp_path / "extra.csv")]},
        "exclude_nothing": {"labelled": [train], "exclude": [str(tmp_path / "dev.tsv")]},
        "no_preset": {"labelled": [train], "augment_copies": 2},
        "output_is_input": {"labelled": [train]},
        "not_tsv": {"labelled": [train]},
        "no_labelled": {},
        "exclude_is_labelled": {"labelled": [train], "exclude": [train]},
    }[case]
    output = {"output_is_input": train, "not_tsv": str(tmp_path / "out.csv")}.get(case, str(tmp_path / "out.tsv"))
    with pytest.raises(error) as raised:
        build_transfer_set(TransferSetConfig(**config), output)
    text = str(raised.value)
    assert text.startswith(message.format(dir=tmp_path)), text
    assert "\n" not in text
    assert not (tmp_path / "out.tsv").exists()


# -- real data -------------------------------------------------------------------------------------


def test_real_sst2_dev_never_leaks_into_a_build_from_a_train_slice(tmp_path, shared_data, write):
    train_lines = (shared_data / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    dev_lines = (shared_data / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    # A slice of train with 25 dev sentences planted in it, upper-cased and without their final punctuation.
    planted = [line.split("\t")[0].upper().rstrip(" .!?") + "\t" + line.split("\t")[1] for line in dev_lines[1:26]]
    labelled = write("train_slice.tsv", "\n".join(train_lines[:2001] + planted) + "\n")
    dev = str(shared_data / "sst2" / "dev.tsv")
    summary, out = build(tmp_path, labelled=[labelled], exclude=[dev])
    dev_keys = {normalise(line.split("\t")[0]) for line in dev_lines[1:]}
    assert summary["exclude_texts"] == len(dev_keys)
    assert not {normalise(text) for text, _, _ in read_output(out)} & dev_keys
    assert summary["excluded"]["labelled"] >= 25
    assert summary["counts"]["labelled"] > 1500
