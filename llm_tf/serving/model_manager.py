"""Which versions of which models are loaded: file-system polling, version policies, labels.

:class:`ModelManager` does what TF Serving's file-system source, availability-preserving
manager and servable state monitor do together:

* a poll thread lists each model's base path for integer version directories (temporary names
  such as ``.2.partial`` are ignored, so copy a version in and rename it into place); a base
  path on a bucket (``gs://...``, read through ``tf.io.gfile``), where a version is copied in
  file by file, lists a version only once its ``saved_model.pb`` is there (copied last);
* the version policy (``latest`` N, ``all``, ``specific``) picks the wanted versions;
* new versions are loaded (warm-up records replayed first) and only then are the versions no
  longer wanted unloaded, so a model always has a version serving;
* a version that fails to load is reported (log + ``END`` state with the error) and skipped
  while the previous one keeps serving; it is retried when its directory changes;
* in-flight requests keep their servable across an unload: it is released after they end.
"""

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from absl import logging
from tensorflow_serving.apis import get_model_status_pb2

from llm_tf import io_utils
from llm_tf.errors import ConfigError, DataError
from llm_tf.serving import config, errors
from llm_tf.serving.servable import Servable
from llm_tf.serving.servable_calls import replay_warmup

State = get_model_status_pb2.ModelVersionStatus.State


@dataclasses.dataclass
class VersionStatus:
    """The manager's view of one version (GetModelStatus).

    Attributes:
        state: A ``ModelVersionStatus.State`` value (START, LOADING, AVAILABLE, UNLOADING, END).
        error: Why it ended, for a failed load; None when all is well.
    """

    state: int
    error: errors.ServingError | None = None


@dataclasses.dataclass
class _Model:
    spec: object
    statuses: dict[int, VersionStatus] = dataclasses.field(default_factory=dict)
    servables: dict[int, Servable] = dataclasses.field(default_factory=dict)
    labels: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: dict[int, tuple] = dataclasses.field(default_factory=dict)  # version -> fingerprint
    retired: bool = False


def scan_versions(base_path: str) -> dict[int, str]:
    """Lists the integer version directories under ``base_path``.

    Args:
        base_path: A model's base path.

    Returns:
        Version -> its directory; empty when the base path is missing or unreadable. On a
        bucket, only versions whose ``saved_model.pb`` is there (a copy may be under way).
    """
    try:
        return _scan(base_path)
    except DataError:
        return {}


def _scan(base_path: str) -> dict[int, str]:
    """:func:`scan_versions`, except that a bucket that cannot be listed raises DataError."""
    if io_utils.is_remote(base_path):
        import tensorflow as tf

        base_path = base_path.rstrip("/")
        with io_utils.storage_errors(base_path):
            try:
                names = [name.rstrip("/") for name in tf.io.gfile.listdir(base_path)]
            except tf.errors.NotFoundError:
                return {}
            return {int(name): f"{base_path}/{name}" for name in names
                    if name.isdigit() and tf.io.gfile.exists(f"{base_path}/{name}/saved_model.pb")}
    try:
        names = os.listdir(base_path)
    except OSError:
        return {}
    return {int(name): os.path.join(base_path, name) for name in names
            if name.isdigit() and os.path.isdir(os.path.join(base_path, name))}


def wanted_versions(spec, available: Sequence[int]) -> set[int]:
    """Applies a model's version policy to the versions that can be loaded.

    Args:
        spec: The ``ModelSpec`` (``version_policy``, ``num_versions``, ``versions``).
        available: Versions present on disk (and not known to fail).

    Returns:
        The versions to serve.
    """
    if spec.version_policy == "all":
        return set(available)
    if spec.version_policy == "specific":
        return set(spec.versions) & set(available)
    return set(sorted(available)[-max(1, spec.num_versions):]) if available else set()


def _fingerprint(path: str) -> tuple:
    """What changes when a version directory is rewritten (to retry a failed load)."""
    if io_utils.is_remote(path):
        import tensorflow as tf

        stamps = []
        for candidate in ("saved_model.pb", "variables/variables.index"):
            try:
                stamp = tf.io.gfile.stat(f"{path}/{candidate}")
                stamps.append((stamp.mtime_nsec, stamp.length))
            except tf.errors.OpError:
                stamps.append(None)
        return tuple(stamps)
    stamps = []
    for candidate in (path, os.path.join(path, "saved_model.pb"), os.path.join(path, "variables")):
        try:
            stamp = os.stat(candidate)
            stamps.append((stamp.st_mtime_ns, stamp.st_size, stamp.st_ino))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def _isdir(path: str) -> bool:
    try:
        return io_utils.isdir(path)
    except DataError:
        return False


class ModelManager:
    """Loads, serves and unloads model versions as the configs and the file system say.

    Polling starts at construction; call :meth:`close` to stop it and unload everything.

    Args:
        specs: The models (``llm_tf.serving.config.ModelSpec``).
        poll_seconds: Seconds between file-system polls; 0 loads once and never polls again.
        batching: A ``BatchingSpec`` to batch requests server-side; None for no batching.
        metrics: A ``ServingMetrics`` for loaded versions and batch sizes; optional.
        warmup: Replays one ``PredictionLog`` on a servable (raises ServingError on failure);
            default: :func:`llm_tf.serving.servable_calls.replay_warmup`.
        servable_factory: Builds a version's servable, called as ``Servable`` is (default: ``Servable``).

    Raises:
        ConfigError: Invalid or duplicate specs.
    """

    def __init__(self, specs: Sequence, poll_seconds: float = 1.0, batching=None, metrics=None,
                 warmup: Callable | None = None, servable_factory: Callable = Servable):
        _validate(specs)
        self._servable_factory = servable_factory
        self._poll_seconds = float(poll_seconds)
        self._batching = batching
        self._metrics = metrics
        self._warmup = warmup
        self._lock = threading.Condition()
        self._sync_lock = threading.Lock()
        self._models: dict[str, _Model] = {spec.name: _Model(spec) for spec in specs}
        self._polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="model-manager-poll", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------- lookups
    def model_names(self) -> list[str]:
        """Names of the configured models (not those removed by a reload)."""
        with self._lock:
            return sorted(name for name, model in self._models.items() if not model.retired)

    def specs(self) -> list:
        """The current ``ModelSpec`` list."""
        with self._lock:
            return [model.spec for model in self._models.values() if not model.retired]

    def available_versions(self, name: str) -> list[int]:
        """The AVAILABLE versions of ``name``, ascending (empty for an unknown model)."""
        with self._lock:
            model = self._models.get(name)
            return sorted(model.servables) if model else []

    def version_statuses(self, name: str) -> dict[int, VersionStatus]:
        """Every version the manager has seen for ``name`` (also after the model was removed).

        Args:
            name: The model name.

        Returns:
            Version -> :class:`VersionStatus` copy; empty for a never-seen model.
        """
        with self._lock:
            model = self._models.get(name)
            if model is None:
                return {}
            return {v: dataclasses.replace(s) for v, s in model.statuses.items()}

    def labels(self, name: str) -> dict[str, int]:
        """The active version labels of ``name`` (those whose version was AVAILABLE)."""
        with self._lock:
            model = self._models.get(name)
            return dict(model.labels) if model else {}

    def resolve_version(self, name: str, version: int | None = None, label: str | None = None) -> int:
        """Resolves a request's model spec to an AVAILABLE version number.

        Args:
            name: The model name.
            version: A specific version, or None.
            label: A version label, or None (ignored when ``version`` is given).

        Returns:
            The version.

        Raises:
            ServingError: INVALID_ARGUMENT for an empty name or an unknown label; NOT_FOUND for
                an unknown model or a version that is not AVAILABLE.
        """
        servable = self.acquire(name, version, label)
        self.release(servable)
        return servable.version

    def acquire(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """Returns the servable a request names, counted as in flight until :meth:`release`.

        Args:
            name: The model name.
            version: A specific version, or None for the latest (or the label's).
            label: A version label, used when ``version`` is None.

        Returns:
            The acquired :class:`Servable`.

        Raises:
            ServingError: As :meth:`resolve_version`.
        """
        if not name:
            raise errors.invalid_argument("ModelSpec has no name specified.")
        with self._lock:
            model = self._models.get(name)
            if version is None and label:
                labels = model.labels if model is not None and not model.retired else {}
                if label not in labels:
                    raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
                version = labels[label]
            request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            servable = None
            if model is not None and not model.retired and model.servables:
                servable = (model.servables.get(version) if version is not None
                            else model.servables[max(model.servables)])
            if servable is None or not servable.acquire():
                raise errors.not_found(f"Servable not found for request: {request}")
            return servable

    def release(self, servable: Servable) -> None:
        """Ends a request begun with :meth:`acquire`."""
        servable.release()

    @contextlib.contextmanager
    def handle(self, name: str, version: int | None = None, label: str | None = None) -> Iterator[Servable]:
        """Context manager around :meth:`acquire` / :meth:`release`.

        Raises:
            ServingError: As :meth:`acquire`.
        """
        servable = self.acquire(name, version, label)
        try:
            yield servable
        finally:
            servable.release()

    # -------------------------------------------------------------------------- control
    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Waits until the first poll is done and every model has an AVAILABLE version.

        Args:
            timeout: Seconds to wait; None waits forever.

        Returns:
            True when ready; False on timeout, when polling is off and a model has no
            version, or when a model has no version AVAILABLE and some failed to load.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._polls > 0:
                    models = [m for m in self._models.values() if not m.retired]
                    if all(m.servables for m in models):
                        return True
                    if self._poll_seconds <= 0 or any(m.failed and not m.servables for m in models):
                        return False  # nothing more will come, or a model's versions all failed
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(timeout=remaining if remaining is not None else 1.0)

    def pending_labels(self) -> list[tuple[str, str, int]]:
        """Labels of the specs whose version is not AVAILABLE: ``(model, label, version)``."""
        pending = []
        with self._lock:
            for name, model in sorted(self._models.items()):
                if model.retired:
                    continue
                for label, version in sorted(model.spec.version_labels.items()):
                    if version not in model.servables:
                        pending.append((name, label, version))
        return pending

    def reload_config(self, specs: Sequence) -> None:
        """Replaces the model list: removed models are unloaded, new ones loaded, now.

        Returns after one full sync (new versions loaded, removed ones unloaded).

        Args:
            specs: The new ``ModelSpec`` list.

        Raises:
            ServingError: INVALID_ARGUMENT for invalid specs; FAILED_PRECONDITION when a
                version label names a version that is not AVAILABLE after loading.
        """
        try:
            _validate(specs)
        except ConfigError as e:
            raise errors.invalid_argument(str(e)) from None
        with self._sync_lock:
            with self._lock:
                new_names = {spec.name for spec in specs}
                for spec in specs:
                    model = self._models.get(spec.name)
                    if model is None or model.retired:
                        kept = model.statuses if model is not None else {}
                        self._models[spec.name] = _Model(spec, statuses=kept)
                    else:
                        model.spec = spec
                removed = [m for name, m in self._models.items() if name not in new_names and not m.retired]
                for model in removed:
                    model.retired = True
            for model in removed:
                for version in sorted(model.servables):
                    self._unload(model, version)
                model.labels = {}
            self._sync_all()
        for name, label, version in self.pending_labels():
            if name in new_names:
                raise errors.failed_precondition(
                    f"Request to assign label to version {version} of model {name}, which is not currently "
                    "available for inference")

    def poll_now(self) -> None:
        """Runs one sync of every model in the caller's thread (tests, reloads)."""
        with self._sync_lock:
            self._sync_all()

    def close(self, timeout: float = 30.0) -> None:
        """Stops polling and unloads every version (waiting for in-flight requests).

        Args:
            timeout: Seconds to wait for the poll thread to finish a load in progress.
        """
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._sync_lock:
            for model in list(self._models.values()):
                for version in sorted(model.servables):
                    self._unload(model, version)

    # ----------------------------------------------------------------------- poll loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._sync_lock:
                    if self._stop.is_set():
                        break
                    self._sync_all()
            except Exception:  # a bug must not kill the poll thread; log and keep polling.
                logging.exception("model manager poll failed")
            if self._poll_seconds <= 0:
                break
            self._stop.wait(self._poll_seconds)

    def _sync_all(self) -> None:
        with self._lock:
            models = [m for m in self._models.values() if not m.retired]
        for model in models:
            if self._stop.is_set():
                break
            self._sync_model(model)
        with self._lock:
            self._polls += 1
            self._lock.notify_all()

    def _sync_model(self, model: _Model) -> None:
        spec = model.spec
        exists = _isdir(spec.base_path) if self._polls == 0 else True
        if not exists:
            logging.warning("model %s: base path %s does not exist; waiting for it", spec.name, spec.base_path)
        try:
            on_disk = _scan(spec.base_path)
        except DataError as e:  # a bucket that cannot be listed now: keep serving what is loaded
            logging.log_every_n_seconds(logging.WARNING, "model %s: %s", 60, spec.name, e)
            return
        if not on_disk and self._polls == 0 and exists:
            logging.warning("No versions of servable %s found under base path %s", spec.name, spec.base_path)
        for version in list(model.failed):
            if version not in on_disk or _fingerprint(on_disk[version]) != model.failed[version]:
                del model.failed[version]
        while not self._stop.is_set():
            wanted = wanted_versions(spec, [v for v in on_disk if v not in model.failed])
            missing = sorted(wanted - set(model.servables))
            if not missing:
                break
            self._load(model, missing[-1], on_disk[missing[-1]])
        else:
            return
        for version in sorted(set(model.servables) - wanted):
            self._unload(model, version)
        with self._lock:
            model.labels = {label: version for label, version in spec.version_labels.items()
                            if version in model.servables or model.labels.get(label) == version}

    def _set_status(self, model: _Model, version: int, state: int, error=None) -> None:
        with self._lock:
            model.statuses[version] = VersionStatus(state, error)

    def _load(self, model: _Model, version: int, path: str) -> None:
        name = model.spec.name
        fingerprint = _fingerprint(path)
        self._set_status(model, version, State.START)
        self._set_status(model, version, State.LOADING)
        logging.info("model %s: loading version %d from %s", name, version, path)
        started = time.monotonic()
        servable = None
        try:
            on_batch = (lambda size: self._metrics.record_batch(name, size)) if self._metrics is not None else None
            servable = self._servable_factory(name, version, path, batching=self._batching, on_batch=on_batch)
            records = servable.warmup_records()
            replay = self._warmup or replay_warmup
            for record in records:
                replay(servable, record)
        except errors.ServingError as e:
            self._fail(model, version, fingerprint, servable, e)
            return
        except Exception as e:  # any other load failure is reported the same way.
            self._fail(model, version, fingerprint, servable, errors.internal(f"{path}: {type(e).__name__}: {e}"))
            return
        with self._lock:
            model.servables[version] = servable
            model.statuses[version] = VersionStatus(State.AVAILABLE)
        logging.info("model %s: version %d AVAILABLE (%.1fs, %d warm-up records)", name, version,
                     time.monotonic() - started, len(records))
        self._report(model)

    def _fail(self, model: _Model, version: int, fingerprint: tuple, servable, error: errors.ServingError) -> None:
        logging.error("model %s: version %d failed to load: %s", model.spec.name, version, error.message)
        if servable is not None:
            servable.close(timeout=0)
        with self._lock:
            model.failed[version] = fingerprint
            model.statuses[version] = VersionStatus(State.END, error)

    def _unload(self, model: _Model, version: int) -> None:
        with self._lock:
            servable = model.servables.pop(version, None)
            if servable is None:
                return
            model.statuses[version] = VersionStatus(State.UNLOADING)
        logging.info("model %s: unloading version %d", model.spec.name, version)
        servable.close()
        self._set_status(model, version, State.END)
        self._report(model)

    def _report(self, model: _Model) -> None:
        if self._metrics is not None:
            try:
                self._metrics.set_loaded_versions(model.spec.name, self.available_versions(model.spec.name))
            except Exception:  # metrics must never break loading.
                logging.exception("metrics update failed")


def _validate(specs: Sequence) -> None:
    """Validates specs with the config module's rules (duplicate names, policies...)."""
    config.validate_model_specs(list(specs))
