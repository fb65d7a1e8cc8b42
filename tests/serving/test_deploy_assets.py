"""Tests for the deployment assets under serving/: config files, docker-compose.yml, k8s/.

Nothing is run here (no docker, no cluster): the files are parsed and checked for consistency
with each other and with what llm_tf.serving.config_files writes.
"""

import os
import posixpath
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from llm_tf.serving import config, config_files
from tests.conftest import REPO

SERVING = REPO / "serving"
K8S = SERVING / "k8s"
CONFIG_FILES = ("models.config", "batching_parameters.txt", "monitoring.config")
FLAG_FILES = {"model_config_file": "models.config", "batching_parameters_file": "batching_parameters.txt",
              "monitoring_config_file": "monitoring.config"}
IMAGE = "tensorflow/serving:2.20.0"

# The command that wrote serving/*.config; docs/serving_deploy.md shows the same one.
GENERATE = ["--model_name=sst2", "--model_base_path=/models/sst2", "--max_batch_size=16",
            "--batch_timeout_micros=2000", "--num_batch_threads=2",
            "--max_enqueued_batches=100"]


def _flags(args):
    """{'--flag': 'value'} of a server command line."""
    return dict(arg.split("=", 1) if "=" in arg else (arg, "") for arg in args)


def _k8s(name):
    with open(K8S / name) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def deployment():
    return _k8s("deployment.yaml")


@pytest.fixture(scope="module")
def container(deployment):
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture(scope="module")
def compose():
    with open(SERVING / "docker-compose.yml") as f:
        return yaml.safe_load(f)["services"]["tf-serving"]


def test_committed_configs_are_what_the_binary_writes(tmp_path):
    executable = shutil.which("llm_serving_config") or os.path.join(os.path.dirname(sys.executable),
                                                                     "llm_serving_config")
    result = subprocess.run([executable, f"--output_dir={tmp_path}", *GENERATE], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for name in CONFIG_FILES:
        assert (SERVING / name).read_text() == (tmp_path / name).read_text(), f"regenerate serving/{name}"


def test_committed_configs_parse_with_the_protos():
    assert config_files.load_model_config(str(SERVING / "models.config")) == [config.ModelSpec("sst2", "/models/sst2")]
    batching = config_files.load_batching_parameters(str(SERVING / "batching_parameters.txt"))
    # Tuned with benchmarks/serving.py (docs/serving_server.md, "Performance"): no padding sizes.
    assert (batching.max_batch_size, batching.batch_timeout_micros, batching.num_batch_threads) == (16, 2000, 2)
    assert batching.allowed_batch_sizes == ()
    assert config_files.load_monitoring_config(str(SERVING / "monitoring.config")).enable


def test_every_yaml_file_parses():
    files = sorted(K8S.glob("*.yaml")) + [SERVING / "docker-compose.yml"]
    assert len(files) == 7
    for path in files:
        with open(path) as f:
            assert yaml.safe_load(f), path


def test_configmap_holds_the_committed_config_files_and_they_parse(tmp_path):
    configmap = _k8s("configmap.yaml")
    assert configmap["kind"] == "ConfigMap"
    assert sorted(configmap["data"]) == sorted(CONFIG_FILES)
    for name in CONFIG_FILES:
        assert configmap["data"][name] == (SERVING / name).read_text(), f"k8s/configmap.yaml data {name}"
        (tmp_path / name).write_text(configmap["data"][name])
    config_files.load_model_config(str(tmp_path / "models.config"))
    config_files.load_batching_parameters(str(tmp_path / "batching_parameters.txt"))
    config_files.load_monitoring_config(str(tmp_path / "monitoring.config"))


def test_kustomization_lists_every_manifest():
    resources = _k8s("kustomization.yaml")["resources"]
    assert sorted(resources) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_deployment_flag_files_come_from_the_configmap_and_models_from_the_pvc(deployment, container):
    flags = _flags(container["args"])
    assert container["image"] == IMAGE and container["command"] == ["tensorflow_model_server"]
    assert flags["--enable_batching"] == "true"
    assert int(flags["--model_config_file_poll_wait_seconds"]) > 0
    assert int(flags["--file_system_poll_wait_seconds"]) > 0
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    configmap = _k8s("configmap.yaml")
    for flag, name in FLAG_FILES.items():
        path = flags[f"--{flag}"]
        directory, key = posixpath.split(path)
        assert key == name
        volume = volumes[mounts[directory]]  # a directory mount (no subPath), so updates reach the pod
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        assert key in configmap["data"]
    (model,) = config_files.load_model_config(str(SERVING / "models.config"))
    model_mount = next(p for p in mounts if model.base_path.startswith(p + "/"))
    pvc = _k8s("pvc.yaml")
    assert volumes[mounts[model_mount]]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["resources"]["requests"]["storage"]


def test_deployment_ports_probes_resources_and_scrape_annotations(deployment, container):
    flags = _flags(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (ports == {"grpc": int(flags["--port"]), "http": int(flags["--rest_api_port"])}
            == {"grpc": 8500, "http": 8501})
    (model,) = config_files.load_model_config(str(SERVING / "models.config"))
    readiness = container["readinessProbe"]["httpGet"]
    assert readiness == {"path": f"/v1/models/{model.name}", "port": "http"}
    for probe in ("livenessProbe", "startupProbe"):
        assert set(container[probe]) & {"httpGet", "tcpSocket"}
        port = (container[probe].get("httpGet") or container[probe]["tcpSocket"])["port"]
        assert port in ports
    resources = container["resources"]
    assert set(resources) == {"requests", "limits"}
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    # TF Serving's thread pools match the CPU limit, so they are not throttled.
    assert flags["--tensorflow_intra_op_parallelism"] == resources["limits"]["cpu"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    monitoring = config_files.load_monitoring_config(str(SERVING / "monitoring.config"))
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(ports["http"]),
                           "prometheus.io/path": monitoring.path}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_service_and_hpa_point_at_the_deployment(deployment, container):
    service = _k8s("service.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "grpc": (8500, "grpc"), "http": (8501, "http")}
    assert all(p["targetPort"] in container_ports for p in service["spec"]["ports"])
    hpa = _k8s("hpa.yaml")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["kind"] == "HorizontalPodAutoscaler"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_compose_mounts_the_files_its_flags_name(compose):
    flags = _flags(compose["command"])
    assert compose["image"] == IMAGE and compose["entrypoint"] == ["tensorflow_model_server"]
    for flag in ("--model_config_file_poll_wait_seconds", "--file_system_poll_wait_seconds"):
        assert int(flags[flag]) > 0
    assert flags["--enable_batching"] == "true"
    mounts = {v["target"]: v for v in compose["volumes"]}
    for flag, name in FLAG_FILES.items():
        directory, key = posixpath.split(flags[f"--{flag}"])
        assert key == name
        source = mounts[directory]["source"]
        assert (SERVING / source / key).is_file(), f"{flag}: {source}/{key} missing beside docker-compose.yml"
        assert mounts[directory]["read_only"] is True
    (model,) = config_files.load_model_config(str(SERVING / "models.config"))
    assert any(model.base_path.startswith(target + "/") for target in mounts)


def test_compose_ports_healthcheck_and_limits(compose):
    flags = _flags(compose["command"])
    assert compose["ports"] == [f"{flags['--port']}:8500", f"{flags['--rest_api_port']}:8501"]
    check = " ".join(compose["healthcheck"]["test"])
    assert re.search(r"/dev/tcp/127\.0\.0\.1/8501", check) and "GET /v1/models/sst2 " in check
    assert "AVAILABLE" in check
    limits = compose["deploy"]["resources"]["limits"]
    assert set(limits) == {"cpus", "memory"}
    assert flags["--tensorflow_intra_op_parallelism"] == limits["cpus"]
