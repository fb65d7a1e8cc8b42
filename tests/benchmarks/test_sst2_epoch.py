"""The real-data epoch benchmark's step count and report."""

import json

from benchmarks import sst2_epoch


def test_epoch_steps_counts_full_batches(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"counts": {"train": 67349, "eval": 872}}))
    assert sst2_epoch.epoch_steps(str(tmp_path), 32) == 2104


def test_markdown_states_the_target_verdict():
    run = {"wall_s": 100.0, "dev_accuracy": 0.8, "train_examples_per_s": 500.0}
    hf_run = {"wall_s": 150.0, "dev_accuracy": 0.79, "train_examples_per_s": 400.0, "import_s": 1.0,
              "tokenize_s": 2.0, "train_s": 140.0, "eval_s": 1.0}
    spread = lambda x: {"median": x, "min": x, "max": x, "runs": [x]}  # noqa: E731
    report = {"command": "c", "machine": {"cpu": "cpu", "cores": 2, "tensorflow": "2", "load_average_before": [1, 1, 1],
                                          "load_average": [1, 1, 1], "date": "d", "commit": "x", "peers": {}},
              "size": "tiny", "steps": 2104, "batch_size": 32, "seq_length": 64, "learning_rate": 5e-4,
              "hf_learning_rate": 5e-4, "rounds": 1, "torch_omp_wait_policy": "PASSIVE",
              "systems": {"ours": {"wall_s": spread(100.0), "dev_accuracy": spread(0.8), "runs": [run]},
                          "hf": {"wall_s": spread(150.0), "dev_accuracy": spread(0.79), "runs": [hf_run]}},
              "target": {"speedup": 1.5, "accuracy_gap": 0.01, "met": False}}
    text = sst2_epoch.markdown(report)
    assert "**1.50x**" in text and "+1.00 points" in text and "NOT met" in text
    assert "| ours |" in text and "| 500 |" in text


def test_markdown_lists_each_rounds_seed_and_accuracy():
    spread = lambda xs: {"median": sorted(xs)[len(xs) // 2], "min": min(xs), "max": max(xs), "runs": xs}  # noqa: E731
    ours = [{"wall_s": 60.0 + r, "dev_accuracy": 0.80 + r / 100, "seed": 42 + r} for r in range(3)]
    hf = [{"wall_s": 120.0 + r, "dev_accuracy": 0.81 - r / 100, "seed": 42 + r, "import_s": 1.0, "tokenize_s": 2.0,
           "train_s": 110.0, "eval_s": 1.0} for r in range(3)]
    report = {"command": "c", "machine": {"cpu": "cpu", "cores": 2, "tensorflow": "2", "load_average_before": [1, 1, 1],
                                          "load_average": [1, 1, 1], "date": "d", "commit": "x", "peers": {}},
              "size": "tiny", "steps": 2104, "batch_size": 32, "seq_length": 64, "learning_rate": 5e-4,
              "hf_learning_rate": 5e-4, "rounds": 3, "seeds": [42, 43, 44], "torch_omp_wait_policy": "PASSIVE",
              "systems": {name: {"wall_s": spread([r["wall_s"] for r in runs]),
                                 "dev_accuracy": spread([r["dev_accuracy"] for r in runs]), "runs": runs}
                          for name, runs in (("ours", ours), ("hf", hf))}}
    text = sst2_epoch.markdown(report)
    assert "seeds 42, 43, 44" in text
    assert "| 2 | 43 | 61.0 | 0.8100 | 121.0 | 0.8000 |" in text


def test_system_names_carry_the_precision():
    assert sst2_epoch.split_system("ours") == ("ours", "fp32")
    assert sst2_epoch.split_system("hf_bf16") == ("hf", "bf16")
    for bad in ("torch", "ours_fp16", "hf_"):
        try:
            sst2_epoch.split_system(bad)
        except ValueError as e:
            assert bad in str(e)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_targets_race_fp32_and_the_best_of_each_side():
    runs = {"ours_fp32": [{"wall_s": 300.0}], "ours_bf16": [{"wall_s": 200.0}],
            "hf_fp32": [{"wall_s": 600.0}], "hf_bf16": [{"wall_s": 400.0}]}
    accuracy = {"ours_fp32": 0.90, "ours_bf16": 0.89, "hf_fp32": 0.895, "hf_bf16": 0.9}
    summary = {n: {"wall_s": {"median": r[0]["wall_s"]}, "dev_accuracy": {"median": accuracy[n]}}
               for n, r in runs.items()}
    kinds = {n: sst2_epoch.split_system(n) for n in runs}
    out = sst2_epoch.targets(runs, summary, kinds, 1.5)
    assert out["target"]["speedup"] == 2.0 and out["target"]["met"]  # 600 / 300, +0.5 points
    best = out["best_target"]
    assert "ours_bf16" in best["what"] and "hf_bf16" in best["what"]
    assert best["speedup"] == 2.0 and best["met"] and round(best["accuracy_gap"], 3) == -0.01
    out = sst2_epoch.targets({"ours": [{"wall_s": 500.0}], "hf": [{"wall_s": 600.0}]},
                             {"ours": summary["ours_fp32"], "hf": summary["hf_fp32"]},
                             {"ours": ("ours", "fp32"), "hf": ("hf", "fp32")}, 1.5)
    assert not out["target"]["met"] and "best_target" not in out


def test_equal_counts_are_equal_accuracy_across_float32_and_float64():
    runs = {"ours": [{"wall_s": 300.0}], "hf": [{"wall_s": 600.0}]}
    summary = {"ours": {"wall_s": {"median": 300.0}, "dev_accuracy": {"median": 0.88990825}},  # Keras, float32
               "hf": {"wall_s": {"median": 600.0}, "dev_accuracy": {"median": 776 / 872}}}
    out = sst2_epoch.targets(runs, summary, {"ours": ("ours", "fp32"), "hf": ("hf", "fp32")}, 1.5)
    assert out["target"]["met"]
