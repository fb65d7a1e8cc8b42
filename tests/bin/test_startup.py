"""The start line: versions, devices (GPU/TPU names, else the CPU and its vector extensions), strategy."""

import pathlib
import re
import subprocess
import sys
import types

import pytest

from llm_tf.bin import startup

CPUINFO = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8

processor	: 1
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu
"""


def test_cpu_model_and_extensions_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    model, extensions = startup.cpu_model_and_extensions(str(path))
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert extensions == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                          "amx_bf16", "amx_int8"]
    assert startup.cpu_model_and_extensions(str(tmp_path / "missing")) == ("unknown", [])


class _Device(types.SimpleNamespace):
    pass


def fake_tf(gpus=(), tpus=(), version="2.20.0"):
    def list_physical_devices(kind):
        return {"GPU": [_Device(name=f"/physical_device:GPU:{i}") for i in range(len(gpus))],
                "TPU": [_Device(name=f"/physical_device:TPU:{i}") for i in range(tpus)] if tpus else []}.get(kind, [])

    def get_device_details(device):
        return {"device_name": gpus[int(device.name.rsplit(":", 1)[1])]}

    config = types.SimpleNamespace(list_physical_devices=list_physical_devices,
                                   experimental=types.SimpleNamespace(get_device_details=get_device_details))
    return types.SimpleNamespace(__version__=version, config=config)


def test_devices_gpus_by_name_then_tpus_then_cpu(monkeypatch):
    assert startup.describe_devices(fake_tf(gpus=["NVIDIA H100 80GB HBM3"] * 2)) == "GPU 2x NVIDIA H100 80GB HBM3"
    assert startup.describe_devices(fake_tf(gpus=["NVIDIA L4"])) == "GPU NVIDIA L4"
    assert startup.describe_devices(fake_tf(tpus=8)) == "TPU (8 devices)"
    monkeypatch.setattr(startup, "cpu_model_and_extensions", lambda: ("AMD EPYC", ["avx2", "avx512f"]))
    monkeypatch.setattr(startup, "usable_cores", lambda: 2)
    assert startup.describe_devices(fake_tf()) == "CPU AMD EPYC (2 cores; avx2 avx512f)"


def test_start_line_names_binary_versions_devices_and_strategy(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", fake_tf(gpus=["NVIDIA A100-SXM4-40GB"]))
    line = startup.start_line("llm_train", strategy="mirrored (2 devices)", keras_hub=True)
    assert re.fullmatch(r"llm_train: llm-tf \S+, TensorFlow 2\.20\.0, Keras \S+, keras-hub \S+; "
                        r"devices: GPU NVIDIA A100-SXM4-40GB; strategy: mirrored \(2 devices\)", line), line
    line = startup.start_line("llm_predict", devices=False, keras_hub=False)
    assert "devices" not in line and "keras-hub" not in line and line.startswith("llm_predict: llm-tf ")


@pytest.mark.parametrize("runtime, expected", [
    (dict(strategy="one_device", num_devices=1, tpu=""), "one_device"),
    (dict(strategy="mirrored", num_devices=2, tpu=""), "mirrored (2 devices)"),
    (dict(strategy="tpu", num_devices=1, tpu="grpc://10.0.0.2:8470"), "tpu (grpc://10.0.0.2:8470)"),
])
def test_train_describes_its_strategy(runtime, expected):
    assert startup.describe_strategy(types.SimpleNamespace(**runtime)) == expected


def test_train_describes_the_multi_worker_task(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}')
    runtime = types.SimpleNamespace(strategy="multi_worker_mirrored", num_devices=1, tpu="")
    assert startup.describe_strategy(runtime) == "multi_worker_mirrored (1 device; worker 1 of 2 workers)"


def _generate(*flags):
    executable = pathlib.Path(sys.executable).parent / "llm_generate"
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": ""}
    return subprocess.run([str(executable), "--model_dir=/nonexistent/run", "--prompt=x", *flags], capture_output=True,
                          text=True, timeout=300, env=env)


def test_a_real_binary_logs_one_start_line_and_no_noise():
    out = _generate()
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    start = [line for line in lines if "] llm_generate: llm-tf " in line]
    assert len(start) == 1, out.stderr
    assert re.search(r"TensorFlow 2\.\d+\.\d+, Keras 3\.\d+\.\d+, keras-hub \S+; devices: (GPU|TPU|CPU) ", start[0])
    assert lines[-1] == "llm_generate: error: /nonexistent/run: not a training directory (no params.yaml; run " \
                        "llm_train first)"
    # Nothing else: TensorFlow's start-up chatter is filtered (CUDA probing, CPU features, oneDNN notice).
    assert len(lines) == 2, out.stderr


def test_verbosity_minus_one_hides_the_start_line():
    out = _generate("--verbosity=-1")
    assert out.returncode == 1 and "llm-tf" not in out.stderr and "llm_generate: error:" in out.stderr
