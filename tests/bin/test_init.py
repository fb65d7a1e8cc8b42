"""Binary start-up defaults: oneDNN for the training binaries, unless the user chose; quiet libraries; flag names."""

import logging
import os
import subprocess
import sys

import pytest

PROBE = "import os, sys, llm_tf.bin.{module}; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS')); " \
        "print('tensorflow' in sys.modules)"


@pytest.mark.parametrize("module", ["train", "pipeline"])
@pytest.mark.parametrize("given, expected", [(None, "1"), ("0", "0")])
def test_training_binaries_turn_onednn_on_before_tensorflow_loads(module, given, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [expected, "False"]  # set (or left as given) while TensorFlow is not loaded yet


def test_other_binaries_leave_tensorflow_kernels_alone():
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(module="serve")], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "None"


PIPELINE_CACHE_PROBE = """
import sys
from absl import flags
from llm_tf.bin import pipeline, startup
import llm_tf.pipeline.runner as runner

class Runner:
    def __init__(self, enable_cache):
        print(enable_cache)
    def run(self, p):
        return type("R", (), {"succeeded": True})()

class Module:
    @staticmethod
    def create_pipeline(**kwargs):
        return None

runner.LocalRunner = Runner
pipeline.load_pipeline_module = lambda path: Module
startup.log_start = lambda *a, **k: None
flags.FLAGS(["llm_pipeline", "--pipeline=p.py", *sys.argv[1:]])
pipeline.run_pipeline()
"""


@pytest.mark.parametrize("args, cache", [((), "True"), (("--nocache",), "False"), (("--cache",), "True"),
                                         (("--no_cache",), "False")])
def test_pipeline_cache_flag_reads_well_and_the_old_spelling_still_works(args, cache):
    out = subprocess.run([sys.executable, "-c", PIPELINE_CACHE_PROBE, *args], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [cache]


def _record(name, level, msg, pathname="/x/llm_tf/y.py"):
    return logging.LogRecord(name, level, pathname, 1, msg, None, None)


def test_python_side_filter_drops_library_info_and_known_noise(monkeypatch):
    from llm_tf.bin import _QuietLibraries

    quiet = _QuietLibraries()
    monkeypatch.delenv("LLM_TF_LOG_NOISE", raising=False)
    monkeypatch.setattr(logging.root, "level", logging.INFO)
    assert quiet.filter(_record("absl", logging.INFO, "ours"))
    assert not quiet.filter(_record("tensorflow", logging.INFO, "saver", "/site-packages/tensorflow/python/x.py"))
    assert quiet.filter(_record("tensorflow", logging.WARNING, "real", "/site-packages/tensorflow/python/x.py"))
    font_cache = _record("matplotlib.font_manager", logging.WARNING,
                         "Matplotlib is building the font cache; this may take a moment.")
    assert not quiet.filter(font_cache)
    monkeypatch.setattr(logging.root, "level", logging.DEBUG)  # --verbosity=1
    assert quiet.filter(_record("keras", logging.INFO, "x", "/site-packages/keras/src/x.py"))
    monkeypatch.setenv("LLM_TF_LOG_NOISE", "1")
    assert quiet.filter(font_cache)
