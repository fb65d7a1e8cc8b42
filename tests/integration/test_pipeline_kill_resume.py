"""``kill -9`` of ``llm_pipeline`` during Trainer: nothing partial is visible, a rerun resumes and completes."""

import glob
import os
import re
import signal
import subprocess
import sys
import time

from llm_tf.pipeline.metadata import MetadataStore
from tests.conftest import REPO

TRAIN_STEPS = 300
STEPS_PER_LOOP = 20


def _command(root) -> list[str]:
    return [sys.executable, "-m", "llm_tf.bin.pipeline", f"--pipeline={REPO / 'pipelines' / 'sst2_sentiment.py'}",
            f"--pipeline_root={root / 'pipeline'}", f"--serving_model_base_path={root / 'serving' / 'sst2'}",
            "--options=quantize=false",
            f"--params_override=trainer.train_steps={TRAIN_STEPS},trainer.steps_per_loop={STEPS_PER_LOOP}"]


def _checkpoint_steps(root) -> list[int]:
    """Steps of the checkpoints a restart can see: those the manager's ``checkpoint`` state file lists.

    A ``ckpt-N.index`` file alone is not enough: a kill between it and the state file's update
    leaves a checkpoint that a restart rightly ignores.
    """
    pattern = str(root / "pipeline" / "Trainer" / "model" / ".staging-*" / "checkpoints" / "checkpoint")
    steps = set()
    for path in glob.glob(pattern):
        with open(path, encoding="utf-8") as f:
            steps |= {int(step)
                      for step in re.findall(r'^all_model_checkpoint_paths: ".*?ckpt-(\d+)"$', f.read(), re.M)}
    return sorted(steps)


def test_kill_during_trainer_then_rerun_resumes_and_completes(tmp_path):
    log = open(tmp_path / "first.log", "w+", encoding="utf-8")
    first = subprocess.Popen(_command(tmp_path), stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.time() + 300
    try:
        while not _checkpoint_steps(tmp_path):
            assert first.poll() is None, (
                f"finished before a checkpoint was seen:\n{open(tmp_path / 'first.log').read()[-3000:]}")
            assert time.time() < deadline, "no Trainer checkpoint within 300 s"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    killed_at = max(_checkpoint_steps(tmp_path))
    assert 0 < killed_at < TRAIN_STEPS

    # Nothing partial is visible: the Trainer's output is only its (dot-named) staging directory,
    # and no later component produced anything or pushed a version.
    pipeline = tmp_path / "pipeline"
    assert [name for name in os.listdir(pipeline / "Trainer" / "model") if not name.startswith(".")] == []
    assert not (pipeline / "Exporter").exists() and not (tmp_path / "serving" / "sst2").exists()

    second = subprocess.run(_command(tmp_path), capture_output=True, text=True, cwd=REPO, timeout=600)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    for upstream in ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform"):
        assert re.search(rf"\] {upstream}: cached", output), upstream
    assert "Trainer: resuming in" in output
    restored = [int(step) for step in re.findall(r"restored \S+ckpt-\d+ at step (\d+)", output)]
    assert restored and restored[0] >= killed_at  # a checkpoint may land between the glob and the kill
    assert sorted(os.listdir(tmp_path / "serving" / "sst2")) == ["1"]
    # One model artifact, trained to the end, and the metadata records the trained step.
    finished = [name for name in os.listdir(pipeline / "Trainer" / "model") if not name.startswith(".")]
    assert len(finished) == 1
    assert f"ckpt-{TRAIN_STEPS}.index" in os.listdir(pipeline / "Trainer" / "model" / finished[0] / "checkpoints")
    with MetadataStore(str(pipeline / "metadata.sqlite")) as store:
        [model] = [a for a in store.artifacts_of_type("Model") if a.uri.endswith(os.sep + finished[0])]
    assert model.properties["step"] == TRAIN_STEPS
