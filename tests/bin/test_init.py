"""Binary start-up defaults: oneDNN for the training binaries, unless the user chose."""

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
