"""The embedded TF-Serving-compatible server: model manager + gRPC + REST in one process.

Example:
    >>> server = EmbeddedServer(ServerOptions(model_name="sst2", model_base_path="/models/sst2",
    ...                                       port=0, rest_api_port=0))  # doctest: +SKIP
    >>> server.start(); print(server.grpc_port, server.rest_port)      # doctest: +SKIP
    >>> server.stop()                                                    # doctest: +SKIP
"""

import dataclasses
import os
import signal
import threading

import tensorflow as tf
from absl import logging

from llm_tf import io_utils
from llm_tf.errors import ConfigError, DataError
from llm_tf.serving import config as config_lib
from llm_tf.serving import config_files, graph_batching, tflite_servable
from llm_tf.serving.grpc_server import make_grpc_server
from llm_tf.serving.inference import InferenceService
from llm_tf.serving.model_manager import ModelManager
from llm_tf.serving.monitoring import ServingMetrics
from llm_tf.serving.ports import check_port_free
from llm_tf.serving.rest_app import make_rest_app
from llm_tf.serving.rest_server import RestServer

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass
class ServerOptions:
    """What ``llm_serve`` (embedded backend) serves and how; names follow ``tensorflow_model_server``.

    Attributes:
        host: Interface for gRPC and REST (``localhost`` by default; ``0.0.0.0`` for all).
        port: gRPC port; 0 picks a free one.
        rest_api_port: REST port; 0 means no REST API (as in TF Serving). Use -1 to pick a free one.
        model_name: Single-model mode: the model's name (default ``default``, as TF Serving).
        model_base_path: Single-model mode: its base path.
        model_config_file: A ``ModelServerConfig`` text proto instead of the two above.
        enable_batching: Batch requests server-side.
        batching_parameters_file: ``BatchingParameters`` text proto (implies batching).
        batching_engine: Who batches: ``python`` (our scheduler, ``llm_tf.serving.batching``) or
            ``tensorflow`` (TensorFlow's ``BatchFunction`` op, ``llm_tf.serving.graph_batching``);
            only with batching.
        file_system_poll_wait_seconds: Seconds between version polls; 0 loads once.
        monitoring_config_file: ``MonitoringConfig`` text proto (Prometheus endpoint on REST).
        max_message_bytes: Largest gRPC message and REST body.
        grpc_max_threads: gRPC worker threads. Each request in flight holds one (a batched request
            waits for its batch in it), so this caps concurrent requests and thus batch sizes.
        rest_api_num_threads: REST requests handled at once (TF Serving's flag); likewise each
            REST request in flight holds one.
        ready_timeout: Seconds :meth:`EmbeddedServer.start` waits for every model to have a
            version AVAILABLE (0: do not wait).
        tensorflow_intra_op_parallelism: Threads one TensorFlow op may use (TF Serving's flag of
            the same name); 0: automatic, see :func:`tensorflow_threads`.
        tensorflow_inter_op_parallelism: Threads running independent ops (TF Serving's flag);
            0: automatic.
        prefer_tflite_model: Serve a version from its ``model.tflite`` where it has one (TF Serving's flag;
            ``llm_tf.serving.tflite_servable``).
        num_tflite_pools: Interpreters per TFLite version (TF Serving's flag); None: the CPU count.
        num_tflite_interpreters_per_pool: TF Serving's flag: above 1, requests are batched inside the servable.
    """

    host: str = "localhost"
    port: int = 8500
    rest_api_port: int = 8501
    model_name: str | None = None
    model_base_path: str | None = None
    model_config_file: str | None = None
    enable_batching: bool = False
    batching_parameters_file: str | None = None
    batching_engine: str = "python"
    file_system_poll_wait_seconds: float = 1.0
    monitoring_config_file: str | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grpc_max_threads: int = 64
    rest_api_num_threads: int = 64
    ready_timeout: float = 300.0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    prefer_tflite_model: bool = False
    num_tflite_pools: int | None = None
    num_tflite_interpreters_per_pool: int = 1


def model_specs(options: ServerOptions) -> list:
    """Returns the ``ModelSpec`` list the options describe.

    Args:
        options: The server options.

    Returns:
        The specs: from ``model_config_file``, or the single model.

    Raises:
        ConfigError: Neither or both ways given; a missing base path; a bad config file.
    """
    if options.model_config_file and options.model_base_path:
        raise ConfigError("give either --model_config_file or --model_base_path, not both")
    if options.model_config_file:
        return config_files.load_model_config(options.model_config_file)
    if not options.model_base_path:
        raise ConfigError("no model to serve: pass --model_base_path (with --model_name) or --model_config_file")
    base_path = io_utils.abspath(io_utils.check_path(options.model_base_path, "--model_base_path"))
    try:
        found = io_utils.isdir(base_path)
    except DataError as e:  # an unreachable bucket
        raise ConfigError(f"--model_base_path: {e}") from None
    if not found:
        raise ConfigError(f"--model_base_path: {options.model_base_path} does not exist or is not a directory")
    name = options.model_name or "default"
    specs = [config_lib.ModelSpec(name=name, base_path=base_path)]
    config_lib.validate_model_specs(specs, "--model_name")
    return specs


def batching_spec(options: ServerOptions):
    """Returns the ``BatchingSpec`` to use, or None without batching.

    Raises:
        ConfigError: A bad batching parameters file.
    """
    if options.batching_parameters_file:
        return config_files.load_batching_parameters(options.batching_parameters_file)
    if options.enable_batching:
        return config_lib.BatchingSpec()
    return None


def check_batching_engine(engine: str, batching: bool) -> None:
    """Checks ``--batching_engine``: a known engine, and ``tensorflow`` only with batching on.

    Args:
        engine: The flag's value.
        batching: Whether server-side batching is on (``--enable_batching`` or a parameters file).

    Raises:
        ConfigError: An unknown engine, or ``tensorflow`` without batching.
    """
    try:
        graph_batching.check_engine(engine)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if engine != "python" and not batching:
        raise ConfigError(f"--batching_engine={engine}: needs --enable_batching (or --batching_parameters_file); "
                          "without them no request is batched")


def tensorflow_threads(options: ServerOptions, batching, cores: int | None = None) -> tuple[int, int]:
    """The (intra-op, inter-op) thread counts the server gives TensorFlow; 0 leaves TF's default.

    Given values win. Otherwise, with server-side batching, the ``num_batch_threads`` batches that
    run at once share the cores: each op of a batch gets ``cores // num_batch_threads`` threads
    (at least 1) and the inter-op pool ``num_batch_threads``. TensorFlow's default gives *every*
    batch all the cores, and for small models the threads then spend more CPU handing work to
    each other (and spinning while they wait for it) than they save: on the tiny SST-2 model with
    the shipped 2 batch threads on 2 cores it cost 1.8-2.0 ms of TensorFlow CPU per sentence
    against 1.25-1.3 split this way (docs/serving_server.md). Without batching, TF's defaults.
    ``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` in the environment also win.

    Args:
        options: The server options.
        batching: The ``BatchingSpec``, or None without batching.
        cores: CPUs this process may use (default: its affinity mask).

    Returns:
        (intra-op threads, inter-op threads); 0 for "TensorFlow's default".
    """
    intra, inter = options.tensorflow_intra_op_parallelism, options.tensorflow_inter_op_parallelism
    if batching is not None:
        cores = cores or len(os.sched_getaffinity(0))
        per_batch = max(1, int(batching.num_batch_threads))
        if not intra and not os.environ.get("TF_NUM_INTRAOP_THREADS"):
            intra = max(1, cores // per_batch)
        if not inter and not os.environ.get("TF_NUM_INTEROP_THREADS"):
            inter = per_batch
    return intra, inter


def configure_tensorflow_threads(intra: int, inter: int) -> bool:
    """Sets TensorFlow's thread pools (0 leaves one as it is) before TensorFlow starts its runtime.

    Returns:
        False when the runtime had already started in this process (the settings cannot
        change then; logged), else True.
    """
    if not intra and not inter:
        return True
    try:
        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError as e:  # the eager context exists already (e.g. a second server in tests)
        logging.info("TensorFlow threads left as they are (intra %d, inter %d wanted): %s", intra, inter, e)
        return False
    logging.info("TensorFlow threads: intra-op %s, inter-op %s", intra or "default", inter or "default")
    return True


class EmbeddedServer:
    """Serves TF Serving's gRPC API (and REST when ``rest_api_port`` != 0) from this process.

    Args:
        options: What to serve; see :class:`ServerOptions`.

    Attributes:
        options: As given.
        metrics: The ``ServingMetrics``.
        monitoring: The ``MonitoringSpec`` from ``monitoring_config_file``, or None.
        manager: The ``ModelManager`` (after :meth:`start`).
        service: The ``InferenceService`` (after :meth:`start`).
        grpc_port, rest_port: The bound ports (after :meth:`start`; ``rest_port`` 0 without REST).

    Raises:
        ConfigError: Invalid options or config files (checked here, before anything starts).
    """

    def __init__(self, options: ServerOptions):
        self.options = options
        for flag in ("num_tflite_pools", "num_tflite_interpreters_per_pool"):
            if (getattr(options, flag) or 0) < 0:
                raise ConfigError(f"--{flag}: must be >= 0, got {getattr(options, flag)}")
        self.specs = model_specs(options)
        self.batching = batching_spec(options)
        check_batching_engine(options.batching_engine, self.batching is not None)
        self.monitoring = (config_files.load_monitoring_config(options.monitoring_config_file)
                           if options.monitoring_config_file else None)
        self.metrics = ServingMetrics()
        self.manager = None
        self.service = None
        self.grpc_port = 0
        self.rest_port = 0
        self._grpc = None
        self._rest = None
        self._stopped = threading.Event()

    def start(self) -> None:
        """Starts loading models, binds the ports and waits until every model has a version.

        Raises:
            ConfigError: A port cannot be bound; no loadable version within ``ready_timeout``;
                a version label names a version that is not available.
        """
        options = self.options
        if options.port:
            check_port_free(options.host, options.port, "gRPC")
        configure_tensorflow_threads(*tensorflow_threads(options, self.batching))
        if options.rest_api_port > 0:
            check_port_free(options.host, options.rest_api_port, "REST")
        self.manager = ModelManager(self.specs, options.file_system_poll_wait_seconds,
                                    batching=self.batching, metrics=self.metrics,
                                    servable_factory=tflite_servable.servable_factory(
                                        options.prefer_tflite_model, options.num_tflite_pools,
                                        options.num_tflite_interpreters_per_pool, options.batching_engine))
        self.service = InferenceService(self.manager, self.metrics)
        try:
            self._grpc, self.grpc_port = make_grpc_server(
                self.service, options.host, options.port, options.grpc_max_threads, options.max_message_bytes)
            if options.rest_api_port:
                self._rest = self._make_rest()
                self.rest_port = self._rest.port if self._rest is not None else 0
            if options.ready_timeout > 0 and not self.manager.wait_until_ready(options.ready_timeout):
                raise ConfigError(self._not_ready_message())
            for name, label, version in self.manager.pending_labels():
                raise ConfigError(f"model {name}: version label {label!r} names version {version}, which is not "
                                  "available for inference")
            self._grpc.start()
            if self._rest is not None:
                self._rest.start()
        except BaseException:
            self.stop(grace=0)
            raise
        logging.info("serving %s on gRPC %s:%d%s", ", ".join(self.manager.model_names()), options.host,
                     self.grpc_port, f", REST {options.host}:{self.rest_port}" if self._rest else "")

    def _not_ready_message(self) -> str:
        """Names the models without a version and why (the last load error, if any)."""
        parts = []
        for spec in self.specs:
            if self.manager.available_versions(spec.name):
                continue
            failures = [(v, s.error) for v, s in sorted(self.manager.version_statuses(spec.name).items()) if s.error]
            if failures:
                version, error = failures[-1]
                parts.append(f"model {spec.name}: version {version} failed to load: {error.message}")
            else:
                parts.append(f"model {spec.name}: no loadable version under {spec.base_path} "
                             f"after {self.options.ready_timeout:g}s")
        return "; ".join(parts)

    def _make_rest(self):
        """Builds the REST server."""
        app = make_rest_app(self.service, self.metrics, self.monitoring, max_body_bytes=self.options.max_message_bytes)
        port = 0 if self.options.rest_api_port < 0 else self.options.rest_api_port
        return RestServer(app, self.options.host, port, threads=self.options.rest_api_num_threads,
                          max_body_bytes=self.options.max_message_bytes)

    def stop(self, grace: float = 5.0) -> None:
        """Stops accepting calls, lets in-flight calls finish (up to ``grace`` s), unloads models.

        Args:
            grace: Seconds in-flight gRPC and REST calls get to finish.
        """
        grpc_stopped = self._grpc.stop(grace) if self._grpc is not None else None  # returns at once
        if self._rest is not None:
            self._rest.stop(grace)  # the two graces run at the same time
        if grpc_stopped is not None:
            grpc_stopped.wait(grace + 1)
        if self.manager is not None:
            self.manager.close()
        self._stopped.set()

    def wait(self) -> None:
        """Blocks until :meth:`stop`, or until SIGTERM/SIGINT, which stop gracefully."""
        if threading.current_thread() is threading.main_thread():
            previous = {}

            def handler(signum, frame):
                logging.info("signal %d: stopping gracefully", signum)
                threading.Thread(target=self.stop, name="graceful-stop", daemon=True).start()

            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, handler)
            try:
                while not self._stopped.wait(0.5):
                    pass
            finally:
                for sig, old in previous.items():
                    signal.signal(sig, old)
        else:
            self._stopped.wait()
