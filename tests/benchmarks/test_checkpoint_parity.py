"""The checkpoint-parity benchmark: its comparison figures, report, one-line errors, and a tiny run end to end.

The end-to-end test writes a tiny random Hugging Face BERT directory (tests/preset_fixtures.py)
and runs the benchmark on it with the HF peer; it is skipped when the peer virtualenv has not
been built (``python -c "from benchmarks import peers; peers.ensure_venv()"``; tests never build it).
"""

import json

import numpy as np
import pytest

from benchmarks import checkpoint_parity as parity
from tests.benchmarks.peer_venv import requires_peer_venv


def test_masked_abs_diff_ignores_padding_positions():
    a = np.zeros((2, 3, 4))
    b = np.zeros((2, 3, 4))
    b[0, 1] = 0.5
    b[1, 0, 0] = -0.25
    a[:, 2] = 100.0  # padding: must not count
    mask = np.array([[1, 1, 0], [1, 1, 0]], bool)
    diff = parity.masked_abs_diff(a, b, mask)
    assert diff["max"] == pytest.approx(0.5)
    assert diff["mean"] == pytest.approx((4 * 0.5 + 0.25) / 16)
    assert diff["reference_mean_abs"] == pytest.approx((4 * 0.5 + 0.25) / 16)


def test_mean_pool_averages_real_positions_only():
    sequence = np.array([[[1.0, 2.0], [3.0, 4.0], [50.0, 50.0]]])
    assert parity.mean_pool(sequence, np.array([[1, 1, 0]])) == pytest.approx(np.array([[2.0, 3.0]]))


def test_neighbour_agreement_of_identical_and_of_reordered_embeddings():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((12, 5))
    same = parity.neighbour_agreement(embeddings, embeddings * 3.0, k=3)  # cosine ignores the scale
    assert same == {"same_nearest": 1.0, "different_nearest": 0, "max_reference_margin": 0.0, "top_k_overlap": 1.0,
                    "k": 3}
    # Sentences 0 and 1 nearly tie as neighbours of 2 in the reference; the other system flips them.
    reference = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.99, 0.0], [0.0, 0.0, 1.0]])
    other = reference.copy()
    other[2] = [0.99, 1.0, 0.0]
    result = parity.neighbour_agreement(other, reference, k=10)
    assert result["different_nearest"] == 1 and result["same_nearest"] == pytest.approx(0.75)
    assert 0 < result["max_reference_margin"] < 0.01
    assert result["k"] == 3  # at most n - 1 others


def test_compare_gives_every_figure_and_gelu_share_the_controls_part():
    rng = np.random.default_rng(1)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
    ref = {"sequence_output": rng.standard_normal((3, 4, 6)), "pooled_output": rng.standard_normal((3, 6))}
    near = {name: value + 1e-3 for name, value in ref.items()}
    c = parity.compare(near, ref, mask, k=1)
    assert c["sequence_output"]["max"] == pytest.approx(1e-3) and c["pooled_output"]["mean"] == pytest.approx(1e-3)
    assert 0.999 < c["embedding_cosine"]["min"] <= c["embedding_cosine"]["mean"] <= 1.0 + 1e-12
    assert c["neighbours"]["same_nearest"] == 1.0
    pairs = {"ours vs hf": {"sequence_output": {"mean": 4e-4}}, "ours_erf vs hf": {"sequence_output": {"mean": 1e-6}}}
    assert parity.gelu_share(pairs)["share"] == pytest.approx(1 - 1e-6 / 4e-4)
    assert parity.gelu_share({"ours vs hf": pairs["ours vs hf"]}) is None


def _report(pairs: dict) -> dict:
    return {"command": "python -m benchmarks.checkpoint_parity --preset=p", "data": "dev.tsv", "sentences": 3,
            "padded_length": 4, "mean_length": 3.0, "truncated": 0, "batch_size": 64, "threads": 1,
            "machine": {"cpu": "cpu", "cores": 2, "tensorflow": "2", "keras_hub": "0.32", "load_average_before": [1],
                        "load_average": [1], "date": "d", "commit": "x", "cpu_features": ["avx2", "fma"],
                        "peers": {"torch": "2.13.0", "transformers": "5"}},
            "preset": {"name": "p", "directory": "/p", "format": "transformers", "num_layers": 6, "hidden_dim": 384,
                       "num_heads": 12, "intermediate_dim": 1536, "max_sequence_length": 512,
                       "vocabulary_size": 30522, "lower_case": True},
            "hf_worker": {"hidden_act": "gelu", "attn_implementation": "sdpa"},
            "gelu_control": {"layers_switched": 6, "skipped": False}, "pairs": pairs,
            "gelu_share": parity.gelu_share(pairs),
            "seconds": {"tokenize": 1.0, "ours_load": 2.0, "hf_start": 3.0, "ours_forward": 4.0,
                        "ours_erf_forward": 4.5, "hf_forward": 5.0, "total": 30.0}}


def test_markdown_has_a_row_per_pair_the_cpu_flags_and_the_gelu_share():
    rng = np.random.default_rng(2)
    mask = np.ones((3, 4), bool)
    ref = {"sequence_output": rng.standard_normal((3, 4, 6)), "pooled_output": rng.standard_normal((3, 6))}
    pairs = {"ours_erf vs hf": parity.compare({k: v + 1e-6 for k, v in ref.items()}, ref, mask, 2),
             "ours vs hf": parity.compare({k: v + 1e-3 for k, v in ref.items()}, ref, mask, 2)}  # as JSON sorts them
    text = parity.markdown(_report(pairs))
    assert text.index("| ours vs hf |") < text.index("| ours_erf vs hf |")
    assert "CPU flags: avx2, fma." in text
    assert "| ours vs hf | 1.00e-03 | 1.00e-03 |" in text and "| ours_erf vs hf | 1.00e-06 |" in text
    assert "**99.9%** of the difference" in text
    assert "torch 2.13.0, transformers 5" in text
    assert "forward passes over all sentences (after one untimed batch): ours 4.0 s" in text


def test_a_missing_data_file_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as error:
        parity.main([f"--data={tmp_path / 'missing.tsv'}", f"--output={tmp_path / 'out.md'}"])
    message = str(error.value.code)
    assert "\n" not in message and message.startswith("checkpoint_parity: ") and "missing.tsv: missing" in message
    assert not (tmp_path / "out.md").exists()


def test_an_unknown_preset_or_a_file_without_sentences_is_one_line(tmp_path):
    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\na fine film\t1\n")
    with pytest.raises(SystemExit) as error:
        parity.main(["--preset=no_such_preset", f"--data={data}", f"--output={tmp_path / 'out.md'}"])
    message = str(error.value.code)
    assert "\n" not in message and "no_such_preset" in message and "all_minilm_l6_v2" in message
    (tmp_path / "other.tsv").write_text("text\tlabel\na fine film\t1\n")
    with pytest.raises(SystemExit, match="no 'sentence' column"):
        parity.main([f"--data={tmp_path / 'other.tsv'}"])


@requires_peer_venv
def test_a_tiny_checkpoint_end_to_end_matches_hf_once_gelu_is_exact(tmp_path):
    from tests.preset_fixtures import save_hf_bert_directory

    words = [f"w{i}" for i in range(40)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    checkpoint = save_hf_bert_directory(str(tmp_path / "bert"), vocab, hidden_dim=32, intermediate_dim=64)
    rng = np.random.default_rng(3)
    rows = [" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(12)]
    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{row}\t1\n" for row in rows))
    output = tmp_path / "results" / "parity.md"
    parity.main([f"--preset={checkpoint}", f"--data={data}", f"--output={output}", "--neighbours=3",
                 "--batch_size=5"])
    result = json.loads((tmp_path / "results" / "parity.json").read_text())
    pairs = result["pairs"]
    assert result["sentences"] == 12 and result["hf_worker"]["hidden_act"] == "gelu"
    assert pairs["ours_erf vs hf"]["sequence_output"]["max"] < 1e-4
    assert pairs["ours_erf vs hf"]["pooled_output"]["max"] < 1e-4
    assert pairs["ours vs hf"]["sequence_output"]["mean"] > 10 * pairs["ours_erf vs hf"]["sequence_output"]["mean"]
    assert result["gelu_share"]["share"] > 0.9
    assert "| ours vs ours_erf |" in output.read_text()
