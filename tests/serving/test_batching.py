"""Tests for llm_tf/serving/batching.py: merging, timeouts, padding, errors, shutdown."""

import threading
import time

import grpc
import numpy as np
import pytest

from llm_tf.serving import errors
from llm_tf.serving.batching import BatchScheduler
from llm_tf.serving.config import BatchingSpec


def Spec(**overrides) -> BatchingSpec:
    """BatchingSpec with small defaults for tests."""
    values = dict(max_batch_size=8, batch_timeout_micros=20_000, num_batch_threads=2)
    values.update(overrides)
    return BatchingSpec(**values)


class Recorder:
    """A model that doubles ``x`` and records the batches it ran."""

    def __init__(self, sleep: float = 0.0):
        self.batches = []
        self.sleep = sleep
        self.lock = threading.Lock()

    def __call__(self, inputs):
        with self.lock:
            self.batches.append({k: v.copy() for k, v in inputs.items()})
        if self.sleep:
            time.sleep(self.sleep)
        return {"y": inputs["x"] * 2, "first": inputs["x"][:, :1] if inputs["x"].ndim > 1 else inputs["x"]}


def submit_concurrently(scheduler, requests):
    """Submits every request from its own thread at the same moment; returns results in order."""
    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def one(i):
        barrier.wait()
        try:
            results[i] = scheduler.submit(requests[i])
        except Exception as e:  # noqa: BLE001 - the test inspects it
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows_back():
    model = Recorder()
    with BatchScheduler(model, Spec(max_batch_size=8, batch_timeout_micros=200_000)) as scheduler:
        requests = [{"x": np.array([i, 100 + i])} for i in range(16)]
        results = submit_concurrently(scheduler, requests)
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], [2 * i, 2 * (100 + i)])
    # 32 rows in batches of at most 8 rows: merging happened (16 unbatched calls otherwise).
    assert 4 <= len(model.batches) <= 8
    assert sum(len(b["x"]) for b in model.batches) == 32
    assert max(len(b["x"]) for b in model.batches) == 8


def test_a_partial_batch_runs_after_the_timeout():
    model = Recorder()
    sizes = []
    with BatchScheduler(model, Spec(batch_timeout_micros=100_000), on_batch=sizes.append) as scheduler:
        start = time.monotonic()
        result = scheduler.submit({"x": np.array([3])})
        elapsed = time.monotonic() - start
    assert result["y"].tolist() == [6]
    assert 0.09 <= elapsed < 2.0
    assert sizes == [1]


def test_a_full_batch_runs_at_once_without_waiting_for_the_timeout():
    model = Recorder()
    with BatchScheduler(model, Spec(max_batch_size=2, batch_timeout_micros=30_000_000)) as scheduler:
        start = time.monotonic()
        results = submit_concurrently(scheduler, [{"x": np.array([1])}, {"x": np.array([2])}])
        elapsed = time.monotonic() - start
    assert sorted(r["y"].item() for r in results) == [2, 4]
    assert elapsed < 2.0
    assert len(model.batches) == 1


def test_batches_are_padded_to_an_allowed_size_with_the_first_row_and_unpadded():
    model = Recorder()
    sizes = []
    spec = Spec(max_batch_size=8, allowed_batch_sizes=(4, 8), batch_timeout_micros=0)
    with BatchScheduler(model, spec, on_batch=sizes.append) as scheduler:
        result = scheduler.submit({"x": np.array([5, 6, 7]), "s": np.array([b"a", b"b", b"c"], dtype=object)})
    assert model.batches[0]["x"].tolist() == [5, 6, 7, 5]
    assert model.batches[0]["s"].tolist() == [b"a", b"b", b"c", b"a"]
    assert result["y"].tolist() == [10, 12, 14]
    assert sizes == [4]


def test_variable_length_inputs_are_padded_when_asked():
    model = Recorder()
    spec = Spec(pad_variable_length_inputs=True, batch_timeout_micros=300_000)
    with BatchScheduler(model, spec) as scheduler:
        results = submit_concurrently(scheduler, [
            {"x": np.array([[1, 2, 3]]), "w": np.array([["a", "b", "c"]])},
            {"x": np.array([[4, 5, 6, 7, 8]]), "w": np.array([["d", "e", "f", "g", "h"]])},
        ])
    assert len(model.batches) == 1
    merged = model.batches[0]
    assert merged["x"].shape == (2, 5)
    short = 0 if merged["x"][0, 0] == 1 else 1
    assert merged["x"][short].tolist() == [1, 2, 3, 0, 0]
    assert merged["w"][short].tolist() == [b"a", b"b", b"c", b"", b""]
    assert results[0]["first"].tolist() == [[1]] and results[1]["first"].tolist() == [[4]]
    # Outputs keep the padded length of dimension 1 (as TF Serving does).
    assert results[0]["y"].tolist() == [[2, 4, 6, 0, 0]]


def test_without_padding_requests_of_different_shapes_go_into_separate_batches():
    model = Recorder()
    with BatchScheduler(model, Spec(batch_timeout_micros=300_000)) as scheduler:
        results = submit_concurrently(scheduler, [
            {"x": np.array([[1, 2, 3]])}, {"x": np.array([[4, 5, 6, 7]])}, {"x": np.array([[8, 9, 10]])},
        ])
    assert sorted(b["x"].shape for b in (model.batches)) == [(1, 4), (2, 3)]
    assert results[1]["y"].tolist() == [[8, 10, 12, 14]]
    assert results[2]["y"].tolist() == [[16, 18, 20]]


def test_a_request_larger_than_max_batch_size_is_invalid_argument():
    with BatchScheduler(Recorder(), Spec(max_batch_size=4)) as scheduler:
        with pytest.raises(errors.ServingError) as e:
            scheduler.submit({"x": np.arange(5)})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.message == "Task size 5 is larger than maximum input batch size 4"


def test_inputs_with_different_batch_sizes_are_invalid_argument():
    with BatchScheduler(Recorder(), Spec()) as scheduler:
        with pytest.raises(errors.ServingError) as e:
            scheduler.submit({"x": np.arange(2), "z": np.arange(3)})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "must have equal 0th-dimension size" in e.value.message and "x: 2, z: 3" in e.value.message


def test_an_error_of_the_model_reaches_only_the_requests_of_its_batch():
    def model(inputs):
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] + 1}

    with BatchScheduler(model, Spec(batch_timeout_micros=300_000)) as scheduler:
        # Different dtypes never share a batch: the failing batch holds requests 0 and 2 only.
        results = submit_concurrently(scheduler, [
            {"x": np.array([-1], dtype=np.int64)},
            {"x": np.array([1.5], dtype=np.float32)},
            {"x": np.array([7], dtype=np.int64)},
        ])
    assert isinstance(results[0], errors.ServingError) and results[0].code == grpc.StatusCode.INTERNAL
    assert results[0].message == "ValueError: negative input"
    assert results[2] is results[0] or results[2].message == results[0].message
    assert results[1]["y"].tolist() == [2.5]


def test_a_serving_error_of_the_model_is_passed_on_as_is():
    def model(inputs):
        raise errors.failed_precondition("model is unloading")

    with BatchScheduler(model, Spec(batch_timeout_micros=0)) as scheduler:
        with pytest.raises(errors.ServingError) as e:
            scheduler.submit({"x": np.array([1])})
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.message == "model is unloading"


def test_outputs_without_one_row_per_input_row_are_internal():
    with BatchScheduler(lambda inputs: {"y": np.zeros(1)}, Spec(batch_timeout_micros=0)) as scheduler:
        with pytest.raises(errors.ServingError) as e:
            scheduler.submit({"x": np.arange(3)})
    assert e.value.code == grpc.StatusCode.INTERNAL
    assert "'y' has 1 rows, expected 3" in e.value.message


def test_a_full_queue_is_unavailable():
    release, started = threading.Event(), threading.Event()

    def model(inputs):
        started.set()
        release.wait(10)
        return {"y": inputs["x"]}

    spec = Spec(max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=1)
    scheduler = BatchScheduler(model, spec)
    results = []
    running = threading.Thread(target=lambda: results.append(scheduler.submit({"x": np.array([1])})))
    running.start()
    assert started.wait(5)  # the only worker is busy with the first batch
    deadline = time.monotonic() + 5
    queued = threading.Thread(target=lambda: results.append(scheduler.submit({"x": np.array([2])})))
    queued.start()
    while len(scheduler._ready) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # until the second batch waits in the queue
    with pytest.raises(errors.ServingError) as e:
        scheduler.submit({"x": np.array([3])})
    release.set()
    running.join(5)
    queued.join(5)
    scheduler.close()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    assert e.value.message == (
        "The batch scheduling queue to which this task was submitted is full; currently 1 batches enqueued "
        "and max_enqueued_batches is 1"
    )
    assert sorted(r["y"].item() for r in results) == [1, 2]


def test_close_finishes_queued_work_then_refuses_new_requests():
    model = Recorder(sleep=0.05)
    scheduler = BatchScheduler(model, Spec(batch_timeout_micros=10_000_000, num_batch_threads=1))
    results = []
    thread = threading.Thread(target=lambda: results.append(scheduler.submit({"x": np.array([4])})))
    thread.start()
    while not scheduler._open:
        time.sleep(0.01)
    start = time.monotonic()
    scheduler.close()  # does not wait the 10 s timeout: closing runs open batches at once
    thread.join(5)
    assert time.monotonic() - start < 2.0
    assert results[0]["y"].tolist() == [8]
    with pytest.raises(errors.ServingError) as e:
        scheduler.submit({"x": np.array([1])})
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    assert "closed" in e.value.message


def test_batching_beats_one_call_per_request():
    model = Recorder(sleep=0.02)  # a model call costs 20 ms whatever the batch size
    with BatchScheduler(model, Spec(max_batch_size=16, batch_timeout_micros=5_000)) as scheduler:
        start = time.monotonic()
        results = submit_concurrently(scheduler, [{"x": np.array([i])} for i in range(64)])
        elapsed = time.monotonic() - start
    assert [r["y"].item() for r in results] == [2 * i for i in range(64)]
    # One call per request would take 64 * 20 ms = 1.28 s on one thread, 0.64 s on two.
    assert len(model.batches) <= 16
    assert elapsed < 1.0


def test_python_strings_are_batched_as_utf8_bytes():
    with BatchScheduler(lambda inputs: {"y": inputs["x"]}, Spec(batch_timeout_micros=0)) as scheduler:
        result = scheduler.submit({"x": ["héllo", "b"]})
    assert result["y"].tolist() == ["héllo".encode(), b"b"]


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchScheduler(Recorder(), Spec(max_batch_size=0))
    with pytest.raises(ValueError, match="num_batch_threads"):
        BatchScheduler(Recorder(), Spec(num_batch_threads=0))


def test_requests_joining_an_open_batch_wake_no_worker():
    model = Recorder()
    spec = Spec(max_batch_size=8, batch_timeout_micros=30_000_000, num_batch_threads=4)
    with BatchScheduler(model, spec) as scheduler:
        wakeups = []
        notify, notify_all = scheduler._wake.notify, scheduler._wake.notify_all
        scheduler._wake.notify = lambda n=1: (wakeups.append(n), notify(n))
        scheduler._wake.notify_all = lambda: (wakeups.append("all"), notify_all())
        results = submit_concurrently(scheduler, [{"x": np.array([i])} for i in range(8)])
        assert [r["y"].item() for r in results] == [2 * i for i in range(8)]
        # One wake-up when the batch opens, one when it is full: not one per request per worker.
        assert len(model.batches) == 1
        assert wakeups == [1, 1]


def test_a_busy_worker_hands_the_next_deadline_to_an_idle_one():
    release = threading.Event()

    def model(inputs):
        if inputs["x"].dtype == np.int64:
            release.wait(10)  # the int batch keeps its worker busy until the test releases it
        return {"y": inputs["x"] * 2}

    spec = Spec(max_batch_size=8, batch_timeout_micros=50_000, num_batch_threads=2)
    with BatchScheduler(model, spec) as scheduler:
        slow = threading.Thread(target=scheduler.submit, args=({"x": np.array([1], dtype=np.int64)},))
        slow.start()
        time.sleep(0.01)  # a second batch (other dtype) opens while the first one waits for its deadline
        start = time.monotonic()
        result = scheduler.submit({"x": np.array([1.5], dtype=np.float32)})
        elapsed = time.monotonic() - start
        release.set()
        slow.join(5)
    assert result["y"].tolist() == [3.0]
    assert elapsed < 5.0  # ran at its own deadline on the idle worker, not after the busy one
