"""Train -> llm_export -> server -> client, with real exported models.

Runs against the embedded server, or the real ``tensorflow_model_server`` when
``TF_SERVING_BIN`` names it (see tests/serving/conftest.py:start_server).
"""

import csv
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
import tensorflow as tf

from llm_tf.export import export_dir, exporter
from llm_tf.serving.client import ServingClient
from tests.serving.conftest import start_server


def _dev_sentences(shared_data) -> list[str]:
    with open(shared_data / "sst2" / "dev.tsv", encoding="utf-8") as f:
        return [row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


@pytest.fixture(scope="module")
def served_sst2(trained_classifier, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("models") / "sst2")
    exporter.export_saved_model(trained_classifier, base, version=1)
    server = start_server(["sst2"], poll_seconds=0.2, model_name="sst2", model_base_path=base)
    yield server, base
    server.stop()


def test_served_predictions_equal_in_process_savedmodel_on_sst2_dev(served_sst2, shared_data):
    server, base = served_sst2
    sentences = _dev_sentences(shared_data)
    assert len(sentences) == 872
    loaded = tf.saved_model.load(os.path.join(base, "1"))
    expected = loaded.signatures["serving_default"](text=tf.constant(sentences))
    with ServingClient(server.target, timeout=60) as client:
        served = client.predict_texts("sst2", sentences, batch_size=64)
    assert [r["labels"] for r in served] == [x.decode() for x in expected["labels"].numpy()]
    np.testing.assert_allclose(np.array([r["scores"] for r in served]), expected["scores"].numpy(), atol=1e-5)
    # REST, row format, gives the same answers.
    response = requests.post(f"{server.rest_url}/v1/models/sst2:predict", json={"instances": sentences[:50]},
                             timeout=60)
    assert response.status_code == 200, response.text
    rest = response.json()["predictions"]
    assert [p["labels"] for p in rest] == [r["labels"] for r in served[:50]]
    np.testing.assert_allclose(np.array([p["scores"] for p in rest]), expected["scores"].numpy()[:50], atol=1e-5)


def test_classify_api_on_the_exported_classify_signature(served_sst2):
    server, _ = served_sst2
    with ServingClient(server.target) as client:
        predicted = client.predict_texts("sst2", ["a fine film", "dull"])
        results = client.classify("sst2", [{"text": "a fine film"}, {"text": "dull"}])
    for result, prediction in zip(results, predicted):
        pairs = dict(result) if isinstance(result, list) else result
        scores = [pairs[label] for label in ("0", "1")]
        np.testing.assert_allclose(scores, prediction["scores"], atol=1e-5)


def test_llm_predict_prints_label_and_score(served_sst2):
    server, _ = served_sst2
    binary = os.path.join(os.path.dirname(sys.executable), "llm_predict")
    result = subprocess.run([binary, f"--server={server.target}", "--model=sst2", "a fine film", "dull"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("\ta fine film")
    label, score, _ = lines[0].split("\t")
    assert label in ("0", "1") and 0.5 <= float(score) <= 1.0


def test_hot_reload_of_a_new_export_under_load_loses_no_request(trained_classifier, tmp_path):
    base = str(tmp_path / "sst2")
    exporter.export_saved_model(trained_classifier, base, version=1, checkpoint="best")
    server = start_server(["sst2"], poll_seconds=0.2, rest=False, model_name="sst2", model_base_path=base)
    failures, answers, stop = [], [], threading.Event()

    def hammer():
        with ServingClient(server.target, timeout=30, retries=0) as client:
            while not stop.is_set():
                try:
                    answers.append(client.predict("sst2", {"text": np.array([b"a fine film"], dtype=object)}))
                except Exception as e:  # noqa: BLE001 - every failure counts
                    failures.append(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        exporter.export_saved_model(trained_classifier, base, version=2, checkpoint="latest")  # atomic rename
        with ServingClient(server.target) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                states = {s["version"]: s["state"] for s in client.status("sst2")}
                if states.get(2) == "AVAILABLE" and states.get(1) in (None, "END"):
                    break
                time.sleep(0.2)
            assert states.get(2) == "AVAILABLE" and states.get(1) in (None, "END"), states
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        server.stop()
    assert failures == []
    assert len(answers) > 20


def test_ner_model_served_and_printed_as_word_tags(trained_tagger, tmp_path):
    base = str(tmp_path / "ner")
    exporter.export_saved_model(trained_tagger, base)
    server = start_server(["ner"], poll_seconds=0, rest=False, model_name="ner", model_base_path=base)
    try:
        with ServingClient(server.target) as client:
            [result] = client.predict_texts("ner", ["Peter Blackburn visits Brussels"])
        assert result["words"] == ["Peter", "Blackburn", "visits", "Brussels"]
        tags = open(os.path.join(base, "1", export_dir.LABELS_FILE)).read().split()
        assert len(result["tags"]) == 4 and set(result["tags"]) <= set(tags)
        binary = os.path.join(os.path.dirname(sys.executable), "llm_predict")
        printed = subprocess.run([binary, f"--server={server.target}", "--model=ner",
                                  "Peter Blackburn visits Brussels"], capture_output=True, text=True, timeout=120)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.strip() == " ".join(f"{w}/{t}" for w, t in zip(result["words"], result["tags"]))
    finally:
        server.stop()


def test_llm_serve_process_loads_an_exported_model(trained_classifier, tmp_path):
    """A fresh llm_serve process (nothing imported beforehand) serves tokenizer-in-graph models."""
    from tests.serving.conftest import free_port

    base = str(tmp_path / "sst2")
    exporter.export_saved_model(trained_classifier, base)
    port = free_port()
    binary = os.path.join(os.path.dirname(sys.executable), "llm_serve")
    process = subprocess.Popen([binary, "--backend=embedded", f"--port={port}", "--rest_api_port=0",
                                "--model_name=sst2", f"--model_base_path={base}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with ServingClient(f"localhost:{port}", timeout=120, retries=0) as client:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, process.stderr.read()[-2000:]
                try:
                    if client.status("sst2")[0]["state"] == "AVAILABLE":
                        break
                except Exception:  # noqa: BLE001 - not listening yet
                    assert time.monotonic() < deadline, "llm_serve did not become ready"
                time.sleep(0.3)
            [result] = client.predict_texts("sst2", ["a fine film"])
        assert result["labels"] in ("0", "1") and abs(sum(result["scores"]) - 1) < 1e-5
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0
