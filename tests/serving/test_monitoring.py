"""Tests for llm_tf/serving/monitoring.py: TF Serving's metric names, labels and units."""

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from llm_tf.serving.monitoring import LATENCY_BUCKETS_MICROS, ServingMetrics


def families(metrics):
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    return body.decode("utf-8"), {f.name: f for f in text_string_to_metric_families(body.decode("utf-8"))}


def samples(family, suffix="", **labels):
    return [s for s in family.samples
            if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())]


def test_request_count_by_model_and_status_under_tf_serving_name():
    metrics = ServingMetrics()
    for _ in range(3):
        metrics.record_request("sst2", "predict", "OK", 0.01)
    metrics.record_request("sst2", "predict", "INVALID_ARGUMENT", 0.001)
    metrics.record_request("nope", "predict", "NOT_FOUND", 0.001)
    body, found = families(metrics)
    count = found[":tensorflow:serving:request_count"]
    assert count.type == "counter"
    assert [s.value for s in samples(count, "_total", model_name="sst2", status="OK")] == [3]
    assert [s.value for s in samples(count, "_total", model_name="sst2", status="INVALID_ARGUMENT")] == [1]
    assert [s.value for s in samples(count, "_total", model_name="nope", status="NOT_FOUND")] == [1]
    # Written as TF Serving writes it: the bare counter name, no _total, no _created.
    assert ':tensorflow:serving:request_count{model_name="sst2",status="OK"} 3.0' in body.splitlines()
    assert "_total" not in body and "_created" not in body


def test_request_latency_is_a_microsecond_histogram_with_tf_serving_labels():
    metrics = ServingMetrics()
    metrics.record_request("sst2", "predict", "OK", 0.012)
    metrics.record_request("sst2", "classify", "OK", 0.5, entrypoint="REST")
    metrics.record_request("sst2", "predict", "INTERNAL", 3.0)  # failures are counted, not timed
    _, found = families(metrics)
    latency = found[":tensorflow:serving:request_latency"]
    assert latency.type == "histogram"
    predict = dict(model_name="sst2", API="Predict", entrypoint="GRPC")
    assert [s.value for s in samples(latency, "_count", **predict)] == [1]
    assert abs(samples(latency, "_sum", **predict)[0].value - 12_000) < 1e-6
    buckets = {s.labels["le"]: s.value for s in samples(latency, "_bucket", **predict)}
    assert len(buckets) == 34 and buckets["+Inf"] == 1
    assert buckets["10.0"] == 0 and buckets["18.0"] == 0
    rest = dict(model_name="sst2", API="Classify", entrypoint="REST")
    assert abs(samples(latency, "_sum", **rest)[0].value - 500_000) < 1e-6


def test_latency_buckets_follow_tf_serving():
    assert len(LATENCY_BUCKETS_MICROS) == 33
    assert LATENCY_BUCKETS_MICROS[:4] == (10.0, 18.0, 32.4, 58.32)
    assert 20 * 60e6 < LATENCY_BUCKETS_MICROS[-1] < 30 * 60e6  # about 20 minutes


def test_batches_and_loaded_versions():
    metrics = ServingMetrics()
    metrics.record_batch("sst2", 3)
    metrics.record_batch("sst2", 16)
    metrics.set_loaded_versions("sst2", [1, 2])
    metrics.set_loaded_versions("conll", [])
    _, found = families(metrics)
    runs = found[":tensorflow:serving:batching_session:wrapped_run_count"]
    assert samples(runs, "_total")[0].value == 2
    size = found[":tensorflow:serving:batch_size"]
    assert samples(size, "_count", model_name="sst2")[0].value == 2
    assert samples(size, "_sum", model_name="sst2")[0].value == 19
    assert {s.labels["le"]: s.value for s in samples(size, "_bucket")}["4.0"] == 1
    versions = found[":tensorflow:serving:loaded_versions"]
    assert versions.type == "gauge"
    assert samples(versions, model_name="sst2")[0].value == 2
    assert samples(versions, model_name="conll")[0].value == 0
    metrics.set_loaded_versions("sst2", [2])
    _, found = families(metrics)
    assert samples(found[":tensorflow:serving:loaded_versions"], model_name="sst2")[0].value == 1


def test_each_instance_has_its_own_registry_unless_given_one():
    first, second = ServingMetrics(), ServingMetrics()
    first.record_request("m", "predict", "OK", 0.1)
    _, found = families(second)
    assert samples(found[":tensorflow:serving:request_count"], "_total") == []
    registry = prometheus_client.CollectorRegistry()
    shared = ServingMetrics(registry)
    shared.record_request("m", "predict", "OK", 0.1)
    assert registry.get_sample_value(":tensorflow:serving:request_count_total",
                                     {"model_name": "m", "status": "OK"}) == 1


def test_label_values_are_escaped():
    metrics = ServingMetrics()
    metrics.record_request('we"ird\\name', "predict", "OK", 0.1)
    body, found = families(metrics)
    assert r'model_name="we\"ird\\name"' in body
    assert samples(found[":tensorflow:serving:request_count"], "_total", model_name='we"ird\\name')[0].value == 1
