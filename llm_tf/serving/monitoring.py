"""Prometheus metrics of the embedded server, under TF Serving's metric names.

TF Serving exports its ``/tensorflow/serving/...`` metrics at
``/monitoring/prometheus/metrics`` with every character outside ``[a-zA-Z0-9_]`` turned into
``:``, counters without a ``_total`` suffix and latencies in microseconds. :class:`ServingMetrics`
keeps the same names, labels, units and bucket bounds, so dashboards and alerts written for
``tensorflow_model_server`` work unchanged:

- ``:tensorflow:serving:request_count{model_name, status}`` (counter; status is the canonical
  code name, ``OK``, ``NOT_FOUND``...),
- ``:tensorflow:serving:request_latency{model_name, API, entrypoint}`` (histogram, microseconds,
  successful requests only, as TF Serving does),
- ``:tensorflow:serving:batching_session:wrapped_run_count`` (counter: model runs on batches),

and two of our own, in the same namespace:

- ``:tensorflow:serving:batch_size{model_name}`` (histogram of rows per batch run),
- ``:tensorflow:serving:loaded_versions{model_name}`` (gauge: versions loaded now).

Example:
    >>> metrics = ServingMetrics()
    >>> metrics.record_request("sst2", "predict", "OK", 0.012)
    >>> body, content_type = metrics.exposition()
    >>> b':tensorflow:serving:request_count{model_name="sst2",status="OK"} 1.0' in body
    True
"""

from __future__ import annotations

from llm_tf.errors import ConfigError

try:  # prometheus-client comes with the serving extra
    import prometheus_client
    from prometheus_client.utils import floatToGoString
except ImportError as e:
    raise ConfigError(f"llm_tf.serving needs prometheus-client ({e}): pip install 'llm-tf[serving]'") from None

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
WRAPPED_RUN_COUNT = ":tensorflow:serving:batching_session:wrapped_run_count"
BATCH_SIZE = ":tensorflow:serving:batch_size"
LOADED_VERSIONS = ":tensorflow:serving:loaded_versions"

# TF Serving's request latency buckets: 10 us * 1.8^i for 33 buckets (about 24 minutes),
# rounded to 6 significant digits as TF Serving prints them.
LATENCY_BUCKETS_MICROS = tuple(float(f"{10 * 1.8 ** i:.6g}") for i in range(33))
# Rows per batch: 1, 2, 4, ..., 16384 (TF Serving's bucketing of example counts).
BATCH_SIZE_BUCKETS = tuple(float(2 ** i) for i in range(15))

# Our API names (lower case) to the label values TF Serving records.
_API_LABELS = {
    "predict": "Predict",
    "classify": "Classify",
    "regress": "Regress",
    "multi_inference": "MultiInference",
    "metadata": "GetModelMetadata",
    "status": "GetModelStatus",
}


class ServingMetrics:
    """The embedded server's metrics in their own Prometheus registry.

    Args:
        registry: Where to register the metrics; a new private ``CollectorRegistry`` by default
            (so several servers in one process, e.g. in tests, do not clash).

    Attributes:
        registry: The ``prometheus_client.CollectorRegistry`` holding the metrics.
    """

    def __init__(self, registry: prometheus_client.CollectorRegistry | None = None):
        self.registry = registry if registry is not None else prometheus_client.CollectorRegistry()
        self._request_count = prometheus_client.Counter(
            REQUEST_COUNT, "The total number of requests.", ["model_name", "status"], registry=self.registry
        )
        self._request_latency = prometheus_client.Histogram(
            REQUEST_LATENCY,
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_MICROS,
            registry=self.registry,
        )
        self._wrapped_run_count = prometheus_client.Counter(
            WRAPPED_RUN_COUNT, "Total count of run calls on the wrapped session", registry=self.registry
        )
        self._batch_size = prometheus_client.Histogram(
            BATCH_SIZE,
            "Rows per batch run by the batch scheduler (after padding to an allowed batch size).",
            ["model_name"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self._loaded_versions = prometheus_client.Gauge(
            LOADED_VERSIONS, "Number of versions of the model loaded and serving.", ["model_name"],
            registry=self.registry,
        )
        # Labelled children by label values: ``labels()`` validates and locks on every call,
        # which costs as much as the rest of recording a request. A child, once made, is the
        # same object ``labels()`` would return, so caching it changes nothing exported.
        self._count_children: dict[tuple, prometheus_client.Counter] = {}
        self._latency_children: dict[tuple, prometheus_client.Histogram] = {}
        self._batch_children: dict[str, prometheus_client.Histogram] = {}

    def record_request(self, model: str, api: str, status: str, seconds: float, entrypoint: str = "GRPC") -> None:
        """Counts one finished request; records its latency when it succeeded.

        Args:
            model: The request's model name.
            api: ``predict``, ``classify``, ``regress``, ``multi_inference``, ``metadata`` or
                ``status`` (recorded as TF Serving's ``Predict``, ``Classify``...); any other
                value is recorded as given.
            status: The canonical code name of the outcome, e.g. ``"OK"``, ``"NOT_FOUND"``.
            seconds: Wall time of the request.
            entrypoint: ``"GRPC"`` or ``"REST"``.
        """
        _child(self._count_children, (model, status), self._request_count, model_name=model, status=status).inc()
        if status == "OK":
            _child(self._latency_children, (model, api, entrypoint), self._request_latency,
                   model_name=model, API=_API_LABELS.get(api, api),
                   entrypoint=entrypoint).observe(max(0.0, seconds) * 1e6)

    def record_batch(self, model: str, size: int) -> None:
        """Records one batch run of ``size`` rows for ``model``.

        Args:
            model: The model the batch ran on.
            size: Rows in the batch (after padding).
        """
        self._wrapped_run_count.inc()
        _child(self._batch_children, model, self._batch_size, model_name=model).observe(size)

    def set_loaded_versions(self, model: str, versions: list[int]) -> None:
        """Sets how many versions of ``model`` are loaded now.

        Args:
            model: The model name.
            versions: The versions loaded and serving (may be empty).
        """
        self._loaded_versions.labels(model_name=model).set(len(versions))

    def exposition(self) -> tuple[bytes, str]:
        """Returns the metrics page TF Serving-style and its content type.

        Returns:
            ``(body, content_type)``: the Prometheus text format (version 0.0.4), with counters
            under their bare names (no ``_total``) and no ``_created`` samples, as TF Serving
            writes them.
        """
        return render_text(self.registry), CONTENT_TYPE


def _escape(text: str, quotes: bool = True) -> str:
    """Escapes backslashes, newlines (and double quotes in label values) for the text format."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quotes else text


def _labels_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items()) + "}"


def render_text(registry: prometheus_client.CollectorRegistry) -> bytes:
    """Renders ``registry`` in the Prometheus text format the way TF Serving names things.

    Args:
        registry: A ``prometheus_client`` registry.

    Returns:
        The UTF-8 page: ``# HELP``/``# TYPE`` lines, then one line per sample; counter samples
        lose their ``_total`` suffix and ``_created`` samples are left out.
    """
    lines = []
    for family in registry.collect():
        kind = {"unknown": "untyped"}.get(family.type, family.type)
        lines.append(f"# HELP {family.name} {_escape(family.documentation, quotes=False)}")
        lines.append(f"# TYPE {family.name} {kind}")
        for sample in family.samples:
            name = sample.name
            if name.endswith("_created"):
                continue
            if family.type == "counter" and name == family.name + "_total":
                name = family.name
            lines.append(f"{name}{_labels_text(sample.labels)} {floatToGoString(sample.value)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _child(cache: dict, key, metric, **labels):
    """The labelled child of ``metric`` for ``key``, made with ``labels`` once and then reused from ``cache``."""
    child = cache.get(key)
    if child is None:
        child = cache.setdefault(key, metric.labels(**labels))
    return child
