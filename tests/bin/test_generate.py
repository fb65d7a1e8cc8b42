"""Tests for llm_tf/bin/generate.py, run as the installed console script."""

import json
import os
import shutil
import subprocess
import sys

from tests.conftest import train_tiny


def llm_generate(*args):
    executable = shutil.which("llm_generate") or os.path.join(os.path.dirname(sys.executable), "llm_generate")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=300)


def test_generates_one_json_line_per_prompt_and_errors_are_one_line(prepared_sample, tmp_path):
    run = train_tiny(prepared_sample, str(tmp_path / "clm"), "causal_lm",
                     "trainer.train_steps=4,trainer.steps_per_loop=2")
    result = llm_generate(f"--model_dir={run}", "--prompt=the movie", "--prompt=a dull", "--strategy=top_k",
                          "--top_k=5", "--seed=3", "--max_new_tokens=6")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["prompt"] for line in lines] == ["the movie", "a dull"]
    assert all(isinstance(line["text"], str) and len(line["text"].split()) <= 6 for line in lines)
    again = llm_generate(f"--model_dir={run}", "--prompt=the movie", "--prompt=a dull", "--strategy=top_k", "--top_k=5",
                         "--seed=3", "--max_new_tokens=6")
    assert again.stdout == result.stdout  # the same seed gives the same text
    missing = llm_generate(f"--model_dir={run}")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == ["llm_generate: error: give at least one --prompt"]
