"""Server-side request batching, modelled on TF Serving's shared batch scheduler.

Concurrent :meth:`BatchScheduler.submit` calls are queued; their inputs are concatenated along
axis 0 into one batch, the model runs once on it, and the outputs are split back per request.
A batch is closed when it holds ``max_batch_size`` rows or ``batch_timeout_micros`` after its
first request arrived; ``num_batch_threads`` worker threads run closed batches. The knobs are
those of TF Serving's ``--batching_parameters_file`` (see ``llm_tf.serving.config.BatchingSpec``).

Differences from TF Serving, on purpose: requests whose non-batch shapes or dtypes differ are
queued in separate batches (TF Serving fails the whole batch instead), and a request with zero
rows runs on its own without queueing.

Example:
    >>> import numpy as np
    >>> from llm_tf.serving.config import BatchingSpec
    >>> scheduler = BatchScheduler(lambda x: {"y": x["x"] * 2}, BatchingSpec(max_batch_size=8))
    >>> scheduler.submit({"x": np.array([1, 2])})["y"].tolist()
    [2, 4]
    >>> scheduler.close()
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from llm_tf.serving.errors import ServingError, internal, invalid_argument, unavailable

RunFn = Callable[[dict[str, np.ndarray]], Mapping[str, Any]]


class _Task:
    """One submitted request: its inputs, row count, and where its result goes.

    Completion is signalled with a bare lock taken at creation and released by :meth:`finish`
    (one waiter, one signal): a ``threading.Event`` costs a condition variable and two more
    lock round trips per request, which shows at hundreds of requests a second.
    """

    __slots__ = ("inputs", "size", "_done", "outputs", "error")

    def __init__(self, inputs: dict[str, np.ndarray], size: int):
        self.inputs = inputs
        self.size = size
        self._done = threading.Lock()
        self._done.acquire()
        self.outputs: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None

    def finish(self, outputs: dict[str, np.ndarray] | None = None, error: BaseException | None = None) -> None:
        self.outputs = outputs
        self.error = error
        self._done.release()

    def wait(self) -> None:
        """Blocks until :meth:`finish` has been called."""
        self._done.acquire()


class _Batch:
    """Tasks that will run together; all share one shape/dtype key."""

    __slots__ = ("key", "tasks", "size", "deadline")

    def __init__(self, key: tuple, deadline: float):
        self.key = key
        self.tasks: list[_Task] = []
        self.size = 0
        self.deadline = deadline

    def add(self, task: _Task) -> None:
        self.tasks.append(task)
        self.size += task.size


def _as_array(name: str, value: Any) -> np.ndarray:
    """Converts one input to a numpy array; python strings become UTF-8 bytes objects."""
    if isinstance(value, np.ndarray):
        array = value
    else:
        array = np.asarray(value)
    if array.dtype.kind == "U":
        encoded = [text.encode("utf-8") for text in array.ravel().tolist()]
        array = np.array(encoded, dtype=object).reshape(array.shape)
    if array.ndim == 0:
        raise invalid_argument(f"input '{name}': batching input tensors must have at least one dimension")
    return array


def _dtype_key(array: np.ndarray) -> str:
    # All string representations (fixed-width bytes, objects) concatenate into one object array.
    return "string" if array.dtype.kind in ("S", "O") else array.dtype.str


def _next_allowed_size(size: int, allowed: tuple[int, ...]) -> int:
    """The smallest allowed batch size >= size (size itself when none is, or none are given)."""
    for candidate in sorted(allowed):
        if candidate >= size:
            return candidate
    return size


def _pad_dim1(array: np.ndarray, length: int) -> np.ndarray:
    """Pads dimension 1 of ``array`` to ``length`` with zeros (numbers) or b"" (strings)."""
    missing = length - array.shape[1]
    if missing <= 0:
        return array
    pad_shape = (array.shape[0], missing) + array.shape[2:]
    if _dtype_key(array) == "string":
        padding = np.full(pad_shape, b"", dtype=object)
        return np.concatenate([array.astype(object), padding], axis=1)
    return np.concatenate([array, np.zeros(pad_shape, dtype=array.dtype)], axis=1)


class BatchScheduler:
    """Merges concurrent requests into batches and runs them on worker threads.

    Args:
        run: The model call: a dict of batched input arrays (axis 0 = rows) to a dict of
            output arrays with the same number of rows.
        spec: Batching parameters with the attributes of ``BatchingSpec``: ``max_batch_size``,
            ``batch_timeout_micros``, ``allowed_batch_sizes``, ``num_batch_threads``,
            ``max_enqueued_batches``, ``pad_variable_length_inputs``.
        name: A name for the worker threads and messages (e.g. the model name).
        on_batch: Called with the row count of every batch that runs (after padding to an
            allowed batch size), e.g. ``ServingMetrics.record_batch``.

    Raises:
        ValueError: A parameter is out of range (``max_batch_size`` < 1, no threads...).
    """

    def __init__(self, run: RunFn, spec: Any, name: str = "", on_batch: Callable[[int], None] | None = None):
        self._run = run
        self._name = name
        self._on_batch = on_batch
        self._max_batch_size = int(spec.max_batch_size)
        self._timeout = max(0, int(spec.batch_timeout_micros)) / 1e6
        self._allowed = tuple(int(s) for s in (spec.allowed_batch_sizes or ()))
        self._max_enqueued = int(spec.max_enqueued_batches)
        self._pad_variable_length = bool(spec.pad_variable_length_inputs)
        num_threads = int(spec.num_batch_threads)
        if self._max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self._max_batch_size}")
        if num_threads < 1:
            raise ValueError(f"num_batch_threads must be >= 1, got {num_threads}")
        if self._max_enqueued < 1:
            raise ValueError(f"max_enqueued_batches must be >= 1, got {self._max_enqueued}")
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._open: dict[tuple, _Batch] = {}
        self._ready: collections.deque[_Batch] = collections.deque()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._worker, name=f"batch-{name or 'scheduler'}-{i}", daemon=True)
            for i in range(num_threads)
        ]
        for thread in self._threads:
            thread.start()

    # ----------------------------------------------------------------------------- submit
    def submit(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Queues one request, waits for its batch to run and returns its rows of the outputs.

        Args:
            inputs: Input name to array-like; every input must have the same size of axis 0
                (the request's row count).

        Returns:
            Output name to the request's rows of that output (padding rows dropped).

        Raises:
            ServingError: ``INVALID_ARGUMENT`` for no inputs, a scalar input, inputs with
                different batch sizes or more rows than ``max_batch_size``; ``UNAVAILABLE``
                when the queue is full or the scheduler is closed; the batch's error (as is for
                a ``ServingError``, else ``INTERNAL``) when the model call fails.
        """
        if not inputs:
            raise invalid_argument("batching needs at least one input tensor")
        arrays = {name: _as_array(name, value) for name, value in inputs.items()}
        sizes = {array.shape[0] for array in arrays.values()}
        if len(sizes) != 1:
            shown = ", ".join(f"{name}: {array.shape[0]}" for name, array in arrays.items())
            raise invalid_argument(f"Batching Run() input tensors must have equal 0th-dimension size ({shown})")
        size = sizes.pop()
        if size > self._max_batch_size:
            raise invalid_argument(f"Task size {size} is larger than maximum input batch size {self._max_batch_size}")
        if size == 0:
            if self._closed:
                raise unavailable(self._closed_message())
            return self._run_unbatched(arrays)
        task = _Task(arrays, size)
        self._enqueue(task, self._key(arrays))
        task.wait()
        if task.error is not None:
            raise task.error
        assert task.outputs is not None
        return task.outputs

    def close(self) -> None:
        """Runs what is queued, stops the worker threads; later submits fail ``UNAVAILABLE``."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def __enter__(self) -> BatchScheduler:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------------------ queue
    def _closed_message(self) -> str:
        label = f" '{self._name}'" if self._name else ""
        return f"batch scheduler{label} is closed (server shutting down)"

    def _key(self, arrays: dict[str, np.ndarray]) -> tuple:
        """Requests with equal keys can share a batch."""
        key = []
        for name in sorted(arrays):
            array = arrays[name]
            if self._pad_variable_length and array.ndim >= 2:
                shape = (array.ndim, array.shape[2:])
            else:
                shape = (array.ndim, array.shape[1:])
            key.append((name, _dtype_key(array), shape))
        return tuple(key)

    def _enqueue(self, task: _Task, key: tuple) -> None:
        with self._lock:
            if self._closed:
                raise unavailable(self._closed_message())
            batch = self._open.get(key)
            wake = False
            if batch is not None and batch.size + task.size > self._max_batch_size:
                self._close_batch(batch)
                batch, wake = None, True
            if batch is None:
                enqueued = len(self._ready) + len(self._open)
                if enqueued >= self._max_enqueued:
                    raise unavailable(
                        "The batch scheduling queue to which this task was submitted is full; currently "
                        f"{enqueued} batches enqueued and max_enqueued_batches is {self._max_enqueued}"
                    )
                batch = _Batch(key, time.monotonic() + self._timeout)
                self._open[key] = batch
                wake = True  # a new deadline: an idle worker must start timing it
            batch.add(task)
            if batch.size >= self._max_batch_size:
                self._close_batch(batch)
                wake = True
            # One worker, and only when there is something new to do: a task joining an open
            # batch changes nothing a worker waits for. Waking every worker on every request
            # (notify_all) cost a GIL round trip per worker per request. A worker that takes a
            # batch wakes the next one while work or deadlines remain (see _next_batch).
            if wake:
                self._wake.notify()

    def _close_batch(self, batch: _Batch) -> None:
        """Moves an open batch to the ready queue (lock held)."""
        del self._open[batch.key]
        self._ready.append(batch)

    def _next_batch(self) -> _Batch | None:
        """Blocks until a batch is ready to run; None when closed and drained."""
        with self._lock:
            while True:
                if self._ready:
                    batch = self._ready.popleft()
                    if self._ready or self._open:
                        self._wake.notify()  # hand the remaining work (or deadline) to another worker
                    return batch
                if self._open:
                    now = time.monotonic()
                    earliest = min(self._open.values(), key=lambda b: b.deadline)
                    if self._closed or earliest.deadline <= now:
                        self._close_batch(earliest)
                        continue
                    self._wake.wait(earliest.deadline - now)
                elif self._closed:
                    self._wake.notify_all()
                    return None
                else:
                    self._wake.wait()

    def _worker(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._process(batch)

    # ---------------------------------------------------------------------------- running
    def _run_unbatched(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return {name: np.asarray(value) for name, value in self._run(arrays).items()}
        except ServingError:
            raise
        except Exception as e:  # noqa: BLE001 - the model's failure becomes the request's status
            raise internal(f"{type(e).__name__}: {e}") from e

    def _process(self, batch: _Batch) -> None:
        """Merges, runs and splits one batch; any failure goes to every task of the batch."""
        try:
            merged, rows = self._merge(batch)
            if self._on_batch is not None:
                self._on_batch(rows)
            outputs = self._run(merged)
            pieces = self._split(batch, outputs, rows)
        except ServingError as e:
            for task in batch.tasks:
                task.finish(error=e)
            return
        except Exception as e:  # noqa: BLE001 - the model's failure becomes the request's status
            error = internal(f"{type(e).__name__}: {e}")
            for task in batch.tasks:
                task.finish(error=error)
            return
        for task, outputs_of_task in zip(batch.tasks, pieces):
            task.finish(outputs=outputs_of_task)

    def _merge(self, batch: _Batch) -> tuple[dict[str, np.ndarray], int]:
        """Concatenates the tasks' inputs; returns them and the row count after padding."""
        names = list(batch.tasks[0].inputs)
        rows = _next_allowed_size(batch.size, self._allowed)
        merged = {}
        for name in names:
            parts = [task.inputs[name] for task in batch.tasks]
            if self._pad_variable_length and parts[0].ndim >= 2:
                longest = max(part.shape[1] for part in parts)
                parts = [_pad_dim1(part, longest) for part in parts]
            if _dtype_key(parts[0]) == "string":
                parts = [part if part.dtype == object else part.astype(object) for part in parts]
            array = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            if rows > batch.size:
                array = np.concatenate([array, np.repeat(array[:1], rows - batch.size, axis=0)], axis=0)
            merged[name] = array
        return merged, rows

    def _split(self, batch: _Batch, outputs: Mapping[str, Any], rows: int) -> list[dict[str, np.ndarray]]:
        """Splits batched outputs into one dict per task, dropping padding rows."""
        arrays = {}
        for name, value in outputs.items():
            array = np.asarray(value)
            if array.ndim == 0 or array.shape[0] != rows:
                got = "a scalar" if array.ndim == 0 else f"{array.shape[0]} rows"
                raise internal(f"batched output '{name}' has {got}, expected {rows} (one per input row)")
            arrays[name] = array
        pieces = []
        start = 0
        for task in batch.tasks:
            pieces.append({name: array[start:start + task.size] for name, array in arrays.items()})
            start += task.size
        return pieces
