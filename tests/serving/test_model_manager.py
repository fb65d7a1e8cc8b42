"""Tests for llm_tf.serving.model_manager."""

import os
import threading
import time

import grpc
import numpy as np
import pytest

from llm_tf.errors import ConfigError
from llm_tf.serving import errors
from llm_tf.serving.config import ModelSpec
from llm_tf.serving.model_manager import ModelManager, State, scan_versions, wanted_versions
from tests.serving.conftest import copy_version, write_broken_version

TEXT = {"text": np.array([b"hello"], dtype=object)}


@pytest.fixture
def managers():
    made = []

    def make(*args, **kwargs):
        manager = ModelManager(*args, **kwargs)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


def test_scan_versions_ignores_temporary_and_non_integer_names(tmp_path):
    for name in ("1", "10", ".2.partial", "tmp", "3x"):
        (tmp_path / name).mkdir()
    (tmp_path / "4").write_text("a file, not a version")
    assert sorted(scan_versions(str(tmp_path))) == [1, 10]
    assert scan_versions(str(tmp_path / "missing")) == {}


def test_wanted_versions_per_policy():
    assert wanted_versions(ModelSpec("m", "/x"), [1, 3, 2]) == {3}
    assert wanted_versions(ModelSpec("m", "/x", num_versions=2), [1, 3, 2]) == {2, 3}
    assert wanted_versions(ModelSpec("m", "/x", version_policy="all"), [1, 2]) == {1, 2}
    assert wanted_versions(ModelSpec("m", "/x", version_policy="specific", versions=(1, 5)), [1, 2]) == {1}
    assert wanted_versions(ModelSpec("m", "/x"), []) == set()


def test_loads_latest_and_resolves_requests(model_store, tmp_path, managers):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    copy_version(model_store, 2, base)
    manager = managers([ModelSpec("m", base)], poll_seconds=0)
    assert manager.wait_until_ready(60)
    assert manager.available_versions("m") == [2]
    assert manager.resolve_version("m") == 2
    statuses = manager.version_statuses("m")
    assert statuses[2].state == State.AVAILABLE and 1 not in statuses
    with manager.handle("m") as servable:
        assert servable.run("", TEXT)["label_ids"].shape == (1,)
    cases = [
        (dict(name=""), grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
        (dict(name="other"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(other)"),
        (dict(name="m", version=1), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(m, 1)"),
        (dict(name="m", label="stable"), grpc.StatusCode.INVALID_ARGUMENT,
         "Unrecognized servable version label: stable"),
    ]
    for kwargs, code, message in cases:
        with pytest.raises(errors.ServingError) as info:
            manager.acquire(**kwargs)
        assert (info.value.code, info.value.message) == (code, message)


def test_all_policy_and_labels(model_store, tmp_path, managers):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    copy_version(model_store, 2, base)
    spec = ModelSpec("m", base, version_policy="all", version_labels={"stable": 1, "canary": 2})
    manager = managers([spec], poll_seconds=0)
    assert manager.wait_until_ready(60)
    assert manager.available_versions("m") == [1, 2]
    assert manager.resolve_version("m", label="stable") == 1
    assert manager.resolve_version("m", label="canary") == 2
    assert manager.resolve_version("m", version=1, label="canary") == 1  # a version wins
    assert manager.pending_labels() == []


def test_failed_version_is_skipped_and_retried_when_fixed(model_store, tmp_path, managers):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    write_broken_version(base, 2)
    manager = managers([ModelSpec("m", base)], poll_seconds=0)
    assert manager.wait_until_ready(60)
    assert manager.available_versions("m") == [1]  # version 1 keeps serving
    failed = manager.version_statuses("m")[2]
    assert failed.state == State.END and failed.error.code == grpc.StatusCode.DATA_LOSS
    assert "saved_model.pb" in failed.error.message
    manager.poll_now()  # unchanged directory: not retried
    assert manager.version_statuses("m")[2].state == State.END
    os.rename(os.path.join(base, "2"), str(tmp_path / "broken"))
    copy_version(model_store, 2, base)
    manager.poll_now()
    assert manager.available_versions("m") == [2]
    assert manager.version_statuses("m")[1].state == State.END
    assert manager.version_statuses("m")[1].error is None


def test_failing_warmup_fails_the_load(model_store, tmp_path, managers):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)

    def warmup(servable, record):
        raise errors.invalid_argument("warm-up request rejected")

    manager = managers([ModelSpec("m", base)], poll_seconds=0, warmup=warmup)
    assert not manager.wait_until_ready(60)
    status = manager.version_statuses("m")[1]
    assert status.state == State.END and status.error.message == "warm-up request rejected"


def test_status_while_loading(model_store, tmp_path, managers):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    entered, release = threading.Event(), threading.Event()
    replayed = []

    def warmup(servable, record):
        entered.set()
        release.wait(30)
        replayed.append(record.WhichOneof("log_type"))

    manager = managers([ModelSpec("m", base)], poll_seconds=0, warmup=warmup)
    assert entered.wait(60)
    assert manager.version_statuses("m")[1].state == State.LOADING
    with pytest.raises(errors.ServingError) as info:
        manager.acquire("m")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    release.set()
    assert manager.wait_until_ready(60)
    assert replayed == ["predict_log", "classify_log"]


def test_in_flight_request_survives_unload(model_store, tmp_path, managers):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    manager = managers([ModelSpec("m", base)], poll_seconds=0)
    assert manager.wait_until_ready(60)
    servable = manager.acquire("m")
    copy_version(model_store, 2, base)
    poller = threading.Thread(target=manager.poll_now)
    poller.start()
    deadline = time.monotonic() + 30
    while manager.version_statuses("m")[1].state != State.UNLOADING and time.monotonic() < deadline:
        time.sleep(0.02)
    assert manager.available_versions("m") == [2]  # new requests already go to version 2
    assert manager.version_statuses("m")[1].state == State.UNLOADING
    assert servable.run("", TEXT)["labels"].tolist() == [b"negative"]  # the old one still answers
    manager.release(servable)
    poller.join(30)
    assert manager.version_statuses("m")[1].state == State.END


def test_reload_config_adds_and_removes_models(model_store, tmp_path, managers):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    copy_version(model_store, 1, a)
    copy_version(model_store, 2, b)
    manager = managers([ModelSpec("a", a)], poll_seconds=0)
    assert manager.wait_until_ready(60)
    manager.reload_config([ModelSpec("b", b, version_labels={"stable": 2})])
    assert manager.model_names() == ["b"]
    assert manager.resolve_version("b", label="stable") == 2
    assert manager.version_statuses("a")[1].state == State.END  # still reported after removal
    with pytest.raises(errors.ServingError, match=r"Latest\(a\)"):
        manager.acquire("a")
    with pytest.raises(errors.ServingError, match="Request to assign label to version 7 of model b") as info:
        manager.reload_config([ModelSpec("b", b, version_labels={"stable": 7})])
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(errors.ServingError, match="listed more than once") as info:
        manager.reload_config([ModelSpec("b", b), ModelSpec("b", b)])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_invalid_specs_at_construction():
    with pytest.raises(ConfigError, match="num_versions"):
        ModelManager([ModelSpec("m", "/x", num_versions=0)], poll_seconds=0)


def test_polling_picks_up_new_versions(model_store, tmp_path, managers):
    base = str(tmp_path / "m")
    copy_version(model_store, 1, base)
    manager = managers([ModelSpec("m", base)], poll_seconds=0.1)
    assert manager.wait_until_ready(60)
    copy_version(model_store, 2, base)
    deadline = time.monotonic() + 30
    while manager.available_versions("m") != [2] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert manager.available_versions("m") == [2]
