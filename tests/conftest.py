"""Shared fixtures: file writers, a tiny trained tokenizer, and the path of ../shared/data."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

from llm_tf.training import registry_imports  # noqa: F401  (registers the experiments, as the binaries do)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

CORPUS = [
    "the movie was great and the acting was superb",
    "a dull , lifeless film with no charm",
    "it is a charming and often affecting journey",
    "the plot is thin but the jokes land",
    "an unflinching look at violence and its cost",
    "bad writing , bad acting , bad everything",
    "great fun for the whole family",
    "the director 's best work in years",
]


@pytest.fixture
def write(tmp_path):
    """Writes a file under tmp_path (str is UTF-8 encoded, bytes written as is); returns its path."""

    def _write(name: str, content) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return str(path)

    return _write


@pytest.fixture(scope="session")
def vocab_dir(tmp_path_factory):
    """A tokenizer directory with a small WordPiece vocabulary trained on CORPUS."""
    import tensorflow as tf

    from llm_tf.text import tokenizer, vocab

    directory = tmp_path_factory.mktemp("tokenizer")
    words = vocab.train_wordpiece(tf.data.Dataset.from_tensor_slices(CORPUS * 20), vocab_size=300)
    vocab.save_wordpiece(str(directory / "vocab.txt"), words)
    tokenizer.TokenizerConfig(max_seq_length=16).save(str(directory))
    return str(directory)


@pytest.fixture(scope="session")
def text_tokenizer(vocab_dir):
    """The in-graph tokenizer over ``vocab_dir``."""
    from llm_tf.text.tokenizer import TextTokenizer

    return TextTokenizer.from_directory(vocab_dir)


@pytest.fixture
def shared_data():
    """Path of ../shared/data (the real data sets); skips, saying why, when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


SST2_SAMPLE = REPO / "samples" / "sst2_sample"
CONLL_SAMPLE = REPO / "samples" / "conll_sample"


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory) -> str:
    """The shipped SST-2-style sample prepared by llm_prepare's library call (train 60, eval 16)."""
    from llm_tf.data.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("prepared") / "sst2"
    prepare(PrepareConfig(output_dir=str(out), inputs=[str(SST2_SAMPLE / "train.tsv")],
                          eval_inputs=[str(SST2_SAMPLE / "dev.tsv")], text_field="sentence", vocab_size=300))
    return str(out)


def train_tiny(prepared_dir: str, model_dir: str, experiment: str = "sentence_classification",
               override: str = "") -> str:
    """Trains a tiny model for a few steps on a prepared directory; returns ``model_dir``."""
    from llm_tf.training import configs, tasks, train_lib

    config = tasks.experiment_config(experiment)
    settings = (f"task.data.prepared_dir={prepared_dir},task.model.size=tiny,task.data.seq_length=32,"
                "task.data.global_batch_size=16,task.data.eval_batch_size=16,trainer.train_steps=30,"
                "trainer.steps_per_loop=15,trainer.optimizer.learning_rate=0.003")
    configs.apply_overrides(config, [], settings + ("," + override if override else ""))
    train_lib.run_experiment(config, "train_and_eval", model_dir)
    return model_dir


@pytest.fixture(scope="session")
def trained_classifier(prepared_sample, tmp_path_factory) -> str:
    """model_dir of a tiny sentence classifier trained for a few steps on the sample."""
    return train_tiny(prepared_sample, str(tmp_path_factory.mktemp("runs") / "classifier"))


@pytest.fixture(scope="session")
def prepared_conll_sample(tmp_path_factory) -> str:
    """The shipped CoNLL-style sample, prepared for token classification."""
    from llm_tf.data.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("prepared") / "conll"
    prepare(PrepareConfig(output_dir=str(out), task="token_classification", inputs=[str(CONLL_SAMPLE / "train.txt")],
                          eval_inputs=[str(CONLL_SAMPLE / "dev.txt")], lower_case=False, vocab_size=300))
    return str(out)


@pytest.fixture(scope="session")
def trained_tagger(prepared_conll_sample, tmp_path_factory) -> str:
    """model_dir of a tiny NER tagger trained for a few steps on the CoNLL sample."""
    return train_tiny(prepared_conll_sample, str(tmp_path_factory.mktemp("runs") / "tagger"), "token_classification")


@pytest.fixture(scope="session")
def exported_version(trained_classifier, tmp_path_factory) -> str:
    """Version directory of the tiny classifier exported by llm_export's library call (TFLite tests)."""
    from llm_tf.export import exporter

    base = tmp_path_factory.mktemp("tflite_models") / "sst2"
    return exporter.export_saved_model(trained_classifier, str(base), warmup_count=0).path


@pytest.fixture(scope="session")
def exported_with_tflite(trained_classifier, tmp_path_factory):
    """ExportResult of the tiny classifier exported with ``tflite_model="dynamic_int8"`` (model.tflite beside it)."""
    from llm_tf.export import exporter

    base = tmp_path_factory.mktemp("served_tflite") / "sst2"
    return exporter.export_saved_model(trained_classifier, str(base), warmup_count=3, tflite_model="dynamic_int8")


@pytest.fixture(scope="session")
def loaded_export(exported_version):
    """The export loaded by export_dir.load_exported."""
    from llm_tf.export import export_dir

    return export_dir.load_exported(exported_version)


@pytest.fixture(scope="session")
def converted(loaded_export, tmp_path_factory) -> dict:
    """Every form x variant converted, metadata embedded, written to files: name -> (path, Conversion)."""
    from llm_tf.export import representative, tflite_convert, tflite_metadata

    calibration = representative.representative_texts(32, prepared_dir=loaded_export.prepared_dir).texts
    directory = tmp_path_factory.mktemp("tflite_variants")
    vocab = open(loaded_export.vocab_path, "rb").read()
    out = {}
    for form in tflite_convert.FORMS:
        for variant in tflite_convert.VARIANTS:
            conversion = tflite_convert.convert_variant(loaded_export, form, variant, calibration)
            path = os.path.join(directory, conversion.name + ".tflite")
            with open(path, "wb") as f:
                f.write(tflite_metadata.with_model_files(conversion.content, loaded_export.labels, vocab,
                                                         tflite_convert.export_info_json(loaded_export, conversion)))
            out[conversion.name] = (path, conversion)
    return out


def predict_served(model_base_path: str, texts: list[str], model_name: str = "sst2") -> list[dict]:
    """Serves a model base path with the embedded server on free ports, sends ``texts`` over
    gRPC and stops the server; returns one output dict per text."""
    from llm_tf.serving.client import ServingClient
    from llm_tf.serving.server import EmbeddedServer, ServerOptions

    server = EmbeddedServer(ServerOptions(port=0, rest_api_port=0, model_name=model_name,
                                          model_base_path=model_base_path, file_system_poll_wait_seconds=0,
                                          ready_timeout=120))
    server.start()
    try:
        with ServingClient(f"localhost:{server.grpc_port}") as client:
            return client.predict_texts(model_name, texts)
    finally:
        server.stop(grace=0)
