"""SST-2, distilled: fine-tune a teacher from a pre-trained checkpoint, distil a small student
from it, and push the student when it keeps enough of the teacher's accuracy.

Run::

    llm_pipeline --pipeline=pipelines/sst2_distilled.py                        # shipped sample, minutes
    llm_pipeline --pipeline=pipelines/sst2_distilled.py --data_dir=../shared/data/sst2 \\
        --options=extra=../shared/data/imdb/reviews.csv \\
        --pipeline_root=runs/pipelines/sst2_distilled --serving_model_base_path=runs/serving/sst2
    llm_pipeline --pipeline=pipelines/sst2_distilled.py --options=teacher=tiny   # no checkpoint: the DAG in seconds

The DAG (component names as in the run summary)::

    ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator       (data_dir's train.tsv, dev.tsv)
    ExampleGen -> Transform -> TeacherTrainer -> TeacherExporter -> TeacherEvaluator
    TransferSetGen (train.tsv + extra + augmented copies, dev.tsv texts excluded)
    TransferSetGen + Transform's vocabulary (cut) -> StudentExampleGen -> StudentTransform
    StudentExampleGen + TeacherTrainer (+ TeacherEvaluator's blessing) -> TeacherLogits
    -> StudentTrainer (distillation) -> StudentExporter -> StudentEvaluator (against TeacherEvaluator)
    -> Quantizer, InfraValidator -> Pusher (the student, as model ``sst2``, only when blessed twice)

``data_dir`` holds ``train.tsv`` and ``dev.tsv`` (columns ``sentence``, ``label``). The teacher
is ``configs/sentence_classification/sst2_minilm.yaml`` from the ``preset`` checkpoint
(``task.init_preset``); the student is ``configs/distillation/sst2_minilm_student.yaml``
(soft targets of precomputed teacher logits, started from the teacher's own layers
``student_init_layers``, the teacher's vocabulary cut to the ``vocab_cut`` tokens the transfer
set uses most); both configs' data and teacher paths are replaced by the pipeline's
artifacts. ``params_override`` goes to the student Trainer (and TeacherLogits, which resolves
the same config). On the shipped sample both train briefly (``teacher_steps``,
``student_steps``) and the blessing thresholds are 0; on other data the configs' step counts
apply.

Options (``--options=key=value,...``; a list value separates its items with ``+``):

* ``teacher``: ``preset`` (default: fine-tune the ``preset`` checkpoint) or ``tiny`` (no
  checkpoint: a tiny encoder trained from scratch on a vocabulary learned from the data, as
  ``sst2_sentiment.py`` without a preset; no augmentation; for CI and a first look).
* ``preset``: the checkpoint (default ``all_minilm_l6_v2``; a keras-hub preset or Hugging Face
  BERT directory also works).
* ``teacher_steps``, ``student_steps``: training steps (defaults: 40 and 150 on the sample,
  the configs' elsewhere).
* ``teacher_threshold``: the teacher Evaluator's minimum accuracy (0 on the sample, else 0.85;
  tiny: 0.75). A teacher that is not blessed does not teach: TeacherLogits stops the run.
* ``extra``: extra in-domain documents for the transfer set (e.g.
  ``../shared/data/imdb/reviews.csv``; default none), read with ``extra_text_field``
  (``review``), ``extra_label_field`` (``sentiment``) and ``label_map``
  (``positive:1+negative:0``).
* ``augment_copies``: embedding-neighbour copies of each labelled sentence (default 8 on the
  sample, where they bring the words the 60 sentences lack; 2 elsewhere; 0 with
  ``teacher=tiny``). ``max_rows`` caps the transfer set (0: no cap).
* ``vocab_cut``: keep this many of the teacher's tokens for the student (default 5000; 0 on
  the sample and with ``teacher=tiny``: the sample's transfer set uses 819 of the 30,522
  tokens, and a cut to those would spell most unseen words in characters).
* ``student_init_layers``: teacher layers the student starts from, e.g. ``0+5`` (default: the
  config's; ``0`` with ``teacher=tiny``).
* ``min_share``: the student is blessed only with at least this share of the teacher's
  accuracy on the same dev data (default 0.97); ``threshold`` (its absolute minimum: 0 on the
  sample, else 0.75) and ``max_drop`` (against the served student, 0.01) apply too.
* ``quantize`` (false skips the Quantizer), ``quantize_forms`` (default ``text`` on the sample,
  ``text+tokens`` elsewhere), ``quantize_variants`` (default ``float32+dynamic_int8`` on the
  sample, ``float32+float16+dynamic_int8+full_int8`` elsewhere), ``quantize_gate`` (variants
  the accuracy gate counts: default those of ``float16`` and ``dynamic_int8`` that are built;
  ``full_int8`` is reported, not gated), ``quantize_eval_count``, ``latency_runs``.
* ``strategy``, ``label_drift_threshold``, ``length_drift_threshold`` as in ``sst2_sentiment.py``.

Caching: each component re-runs only when its properties, inputs or code change. Changing a
student setting (``student_steps``, ``student_init_layers``, ``params_override`` ...) re-runs
the student's components from StudentTrainer on (``min_share``: StudentEvaluator and Pusher);
the teacher's Trainer, Exporter and Evaluator (and TeacherLogits, whose key covers only the
data settings and the teacher) come from the cache. Changing ``vocab_cut`` or the transfer set
re-prepares the student's data and recomputes the logits, still with the cached teacher.
"""

import os

from llm_tf import io_utils
from llm_tf.data.transfer_set import parse_label_map
from llm_tf.errors import ConfigError
from llm_tf.pipeline.components import (
    Evaluator,
    ExampleGen,
    ExampleValidator,
    Exporter,
    InfraValidator,
    Pusher,
    Quantizer,
    SchemaGen,
    StatisticsGen,
    TeacherLogits,
    Trainer,
    TransferSetGen,
    Transform,
)
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.overrides import merge_overrides, parse_overrides

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "samples", "sst2_sample")
MODEL_NAME = "sst2"
TEACHER_CONFIG = os.path.join(REPO, "configs", "sentence_classification", "sst2_minilm.yaml")
STUDENT_CONFIG = os.path.join(REPO, "configs", "distillation", "sst2_minilm_student.yaml")
DEFAULT_PRESET = "all_minilm_l6_v2"
#: Steps on the shipped sample (60 sentences): a brief fine-tune and a small student, minutes in all.
SAMPLE_TEACHER_STEPS = 40
SAMPLE_STUDENT_STEPS = 150
SAMPLE_AUGMENT_COPIES = 8
#: Learning rates on the sample: the configs' (5e-5, 1e-4) are for thousands of steps.
SAMPLE_TEACHER_LEARNING_RATE = 1e-4
SAMPLE_STUDENT_LEARNING_RATE = 3e-4
#: With ``teacher_steps``/``student_steps`` on other data: evaluate (and keep the best) at least this often.
LOOP_STEPS = 500
OPTIONS = frozenset({
    "teacher", "preset", "teacher_steps", "student_steps", "teacher_threshold", "extra", "extra_text_field",
    "extra_label_field", "label_map", "augment_copies", "max_rows", "vocab_cut", "student_init_layers", "min_share",
    "threshold", "max_drop", "quantize", "quantize_forms", "quantize_variants", "quantize_gate", "quantize_eval_count",
    "latency_runs", "strategy", "label_drift_threshold", "length_drift_threshold"})


def _is_sample(data_dir: str) -> bool:
    return io_utils.abspath(data_dir) == SAMPLE_DIR


def _items(value: str) -> list[str]:
    """A list option: items separated by ``+`` (``--options`` itself is split at commas)."""
    return [item.strip() for item in str(value).split("+") if item.strip()]


def _int(options: dict, key: str, default: int) -> int:
    try:
        return int(options.get(key, default))
    except ValueError:
        raise ConfigError(f"--options={key}={options[key]}: expected an integer") from None


def _float(options: dict, key: str, default: float) -> float:
    try:
        return float(options.get(key, default))
    except ValueError:
        raise ConfigError(f"--options={key}={options[key]}: expected a number") from None


def _label_map(value: str) -> dict[str, str]:
    try:
        return parse_label_map(_items(value), "--options=label_map", "positive:1+negative:0")
    except ConfigError:
        raise ConfigError(f"--options=label_map={value}: expected extra_label:label items joined by '+', e.g. "
                          "positive:1+negative:0") from None


def _steps(steps: int | None, learning_rate: float | None, sample: bool) -> dict:
    """Trainer overrides: ``steps`` (in one loop on the sample, one evaluation at the end; else
    evaluated every :data:`LOOP_STEPS` at most) and a learning rate."""
    override: dict = {}
    if steps is not None:
        override["trainer"] = {"train_steps": steps, "steps_per_loop": steps if sample else min(steps, LOOP_STEPS)}
    if learning_rate is not None:
        override.setdefault("trainer", {})["optimizer"] = {"learning_rate": learning_rate}
    return override


def create_pipeline(pipeline_root: str, serving_model_base_path: str, data_dir: str | None = None,
                    params_override: str = "", options: dict | None = None) -> Pipeline:
    """Builds the distilled SST-2 pipeline (see the module docstring).

    Args:
        pipeline_root: Artifacts and metadata go here.
        serving_model_base_path: The blessed student is pushed here as a new version.
        data_dir: Directory with ``train.tsv`` and ``dev.tsv`` (default: the shipped sample).
        params_override: Overrides for the student Trainer's config.
        options: Pipeline options (see the module docstring).

    Returns:
        The :class:`Pipeline`.

    Raises:
        ConfigError: An unknown option or a bad value, ``teacher=tiny`` with a checkpoint
            setting or augmentation, a ``preset`` that is not a usable local BERT checkpoint,
            or a ``params_override`` that cannot be parsed.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ConfigError(f"--options: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(OPTIONS))})")
    data_dir = io_utils.abspath(data_dir or SAMPLE_DIR)
    sample = _is_sample(data_dir)
    train, dev = os.path.join(data_dir, "train.tsv"), os.path.join(data_dir, "dev.tsv")
    strategy = options.get("strategy", "one_device")
    teacher_kind = options.get("teacher", "preset")
    if teacher_kind not in ("preset", "tiny"):
        raise ConfigError(f"--options=teacher={teacher_kind}: expected preset or tiny")
    tiny = teacher_kind == "tiny"
    preset = options.get("preset", DEFAULT_PRESET)
    augment_copies = _int(options, "augment_copies", 0 if tiny else SAMPLE_AUGMENT_COPIES if sample else 2)
    if tiny and ("preset" in options or augment_copies):
        raise ConfigError("--options=teacher=tiny has no checkpoint: drop preset and augment_copies (augmentation "
                          "needs a checkpoint's token embeddings)")

    # The teacher: its data, validation, vocabulary, training, export and evaluation.
    teacher_steps = _int(options, "teacher_steps", 0) or None
    if tiny:
        vocabulary = {"vocab_size": 8000}
        teacher_config = os.path.join(REPO, "configs", "sentence_classification",
                                      "sample_tiny.yaml" if sample else "sst2_tiny.yaml")
        teacher_override = _steps(teacher_steps, None, sample)
        teacher_threshold = _float(options, "teacher_threshold", 0.0 if sample else 0.75)
    else:
        vocabulary = {"preset": preset}
        teacher_config = TEACHER_CONFIG
        teacher_threshold = _float(options, "teacher_threshold", 0.0 if sample else 0.85)
    example_gen = ExampleGen(inputs=[train], eval_inputs=[dev], text_field="sentence", label_field="label",
                             max_seq_length=128, **vocabulary)
    if not tiny:  # the checkpoint as ExampleGen recorded it (a directory's absolute path)
        teacher_override = merge_overrides({"task": {"init_preset": example_gen.properties["preset"]}},
                                           _steps(teacher_steps or (SAMPLE_TEACHER_STEPS if sample else None),
                                                  SAMPLE_TEACHER_LEARNING_RATE if sample else None, sample))
    statistics = StatisticsGen(example_gen.output("examples"))
    schema = SchemaGen(statistics.output("statistics"), example_gen.output("examples"))
    validator = ExampleValidator(statistics.output("statistics"), schema.output("schema"),
                                 example_gen.output("examples"),
                                 label_drift_threshold=_float(options, "label_drift_threshold", 0.1),
                                 # SST-2's train split holds phrases, dev whole sentences (see sst2_sentiment.py).
                                 length_drift_threshold=_float(options, "length_drift_threshold", 2.5))
    transform = Transform(example_gen.output("examples"))
    teacher = Trainer(example_gen.output("examples"), transform.output("transform_graph"), "sentence_classification",
                      config_files=[teacher_config], params_override=teacher_override, strategy=strategy,
                      name="TeacherTrainer")
    teacher_exporter = Exporter(teacher.output("model"), model_name=MODEL_NAME, name="TeacherExporter")
    teacher_evaluator = Evaluator(teacher_exporter.output("saved_model"), example_gen.output("examples"),
                                  threshold=teacher_threshold, name="TeacherEvaluator")  # never served: no baseline

    # The student's data: the transfer set, tokenized with the teacher's vocabulary (cut).
    transfer = TransferSetGen(labelled=[train], exclude=[dev], extra=_items(options.get("extra", "")),
                              extra_text_field=options.get("extra_text_field", "review"),
                              extra_label_field=options.get("extra_label_field", "sentiment"),
                              label_map=_label_map(options.get("label_map", "positive:1+negative:0")),
                              augment_copies=augment_copies, preset=preset if augment_copies else "",
                              max_rows=_int(options, "max_rows", 0))
    vocab_cut = _int(options, "vocab_cut", 0 if sample or tiny else 5000)
    student_examples = ExampleGen(transfer_set=transfer.output("transfer_set"),
                                  vocabulary=transform.output("transform_graph"), eval_inputs=[dev],
                                  max_seq_length=64, vocab_cut=vocab_cut, name="StudentExampleGen")
    student_transform = Transform(student_examples.output("examples"), name="StudentTransform")

    # The student: distilled from precomputed teacher logits, evaluated against the teacher.
    student_steps = _int(options, "student_steps", 0) or (SAMPLE_STUDENT_STEPS if sample else None)
    student_override = _steps(student_steps, SAMPLE_STUDENT_LEARNING_RATE if sample else None, sample)
    layers = _items(options["student_init_layers"]) if "student_init_layers" in options else (["0"] if tiny else [])
    if layers:
        try:
            student_override = merge_overrides(student_override, {"task": {"distillation": {
                "student_init_layers": [int(layer) for layer in layers]}}})
        except ValueError:
            raise ConfigError(f"--options=student_init_layers={options['student_init_layers']}: expected layer "
                              "numbers joined by '+', e.g. 0+5") from None
    if tiny:  # a tiny student on any CPU: float32 (bf16 is emulated where the CPU lacks it); the tiny
        # teacher's own feed-forward size (the config's 768 is half of all-MiniLM-L6-v2's)
        student_override = merge_overrides(student_override, {"trainer": {"mixed_precision": "float32"},
                                                      "task": {"model": {"intermediate_dim": 0}}})
    student_config = {"config_files": [STUDENT_CONFIG],
                      "params_override": merge_overrides(student_override, parse_overrides(params_override))}
    logits = TeacherLogits(student_examples.output("examples"), teacher.output("model"),
                           teacher_blessing=teacher_evaluator.output("blessing"), **student_config)
    student = Trainer(student_examples.output("examples"), student_transform.output("transform_graph"), "distillation",
                      strategy=strategy, teacher_model=teacher.output("model"),
                      teacher_logits=logits.output("teacher_logits"), name="StudentTrainer", **student_config)
    exporter = Exporter(student.output("model"), model_name=MODEL_NAME, name="StudentExporter")
    evaluator = Evaluator(exporter.output("saved_model"), student_examples.output("examples"),
                          threshold=_float(options, "threshold", 0.0 if sample else 0.75),
                          max_drop=_float(options, "max_drop", 0.01), baseline_model_base_path=serving_model_base_path,
                          reference_evaluation=teacher_evaluator.output("evaluation"),
                          min_share_of_reference=_float(options, "min_share", 0.97), name="StudentEvaluator")
    components = [example_gen, statistics, schema, validator, transform, teacher, teacher_exporter, teacher_evaluator,
                  transfer, student_examples, student_transform, logits, student, exporter, evaluator]
    if str(options.get("quantize", "true")).lower() not in ("false", "0", "no"):
        variants = _items(options.get("quantize_variants", "float32+dynamic_int8" if sample
                                      else "float32+float16+dynamic_int8+full_int8"))
        gate = _items(options["quantize_gate"]) if "quantize_gate" in options else [
            v for v in ("float16", "dynamic_int8") if v in variants]  # the variants to ship; full_int8 is reported
        components.append(Quantizer(
            exporter.output("saved_model"), forms=tuple(_items(options.get("quantize_forms", "text" if sample
                                                                           else "text+tokens"))),
            variants=tuple(variants), gate_variants=tuple(gate), eval_count=_int(options, "quantize_eval_count", 0),
            latency_runs=_int(options, "latency_runs", 10)))
    infra = InfraValidator(exporter.output("saved_model"))
    pusher = Pusher(exporter.output("saved_model"), evaluator.output("blessing"), infra.output("infra_blessing"),
                    serving_model_base_path)
    components += [infra, pusher]
    return Pipeline("sst2_distilled", pipeline_root, components)
