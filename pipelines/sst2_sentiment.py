"""SST-2 sentiment: raw TSV files in, a blessed, quantized, pushed SavedModel out.

Run::

    llm_pipeline --pipeline=pipelines/sst2_sentiment.py                      # shipped sample, minutes
    llm_pipeline --pipeline=pipelines/sst2_sentiment.py --data_dir=../shared/data/sst2 \\
        --pipeline_root=runs/pipelines/sst2 --serving_model_base_path=runs/serving/sst2
    llm_pipeline --pipeline=pipelines/sst2_sentiment.py --options=preset=all_minilm_l6_v2   # from a checkpoint

``data_dir`` holds ``train.tsv`` and ``dev.tsv`` (columns ``sentence``, ``label``).
``params_override`` goes to the fine-tuning Trainer (``trainer.train_steps=...``). Options
(``--options=key=value,...`` on the command line): ``preset`` (a pre-trained BERT checkpoint:
a named preset such as ``all_minilm_l6_v2``, a keras-hub preset or a Hugging Face BERT
directory; ExampleGen tokenizes with its vocabulary and lower-casing instead of learning one,
the Trainer starts from it with ``task.init_preset`` and
``configs/sentence_classification/sst2_minilm.yaml``, a few steps on the sample; not with
``pretrain_steps`` or ``vocab_size``), ``pretrain_steps`` (>0 adds MLM pre-training on the
same text before fine-tuning), ``threshold``, ``max_drop``, ``quantize`` (false skips the
Quantizer), ``vocab_size``, ``strategy``, ``label_drift_threshold``,
``length_drift_threshold`` (2.5: SST-2's dev sentences are 3x as long as its train phrases
by design).
"""

import os

from llm_tf import io_utils
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
    Trainer,
    Transform,
)
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.overrides import merge_overrides, parse_overrides

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "samples", "sst2_sample")
MODEL_NAME = "sst2"
#: Fine-tuning steps from a checkpoint on the shipped sample (a smoke run).
SAMPLE_PRESET_STEPS = 8


def _is_sample(data_dir: str) -> bool:
    return io_utils.abspath(data_dir) == SAMPLE_DIR


def _preset_overrides(params_override: str | dict, option: str, preset: str, sample: bool) -> dict:
    """The fine-tuning Trainer's overrides with a checkpoint: ``task.init_preset`` (and, on the
    sample, a few steps), then the user's ``params_override``.

    Args:
        option: The ``preset`` option as given; ``preset`` is the checkpoint as ExampleGen
            recorded it (a directory's absolute path).
    """
    wiring: dict = {"task": {"init_preset": preset}}
    user = parse_overrides(params_override) if params_override else {}
    if sample:  # one loop, of the user's train_steps when given
        steps = (user.get("trainer") or {}).get("train_steps", SAMPLE_PRESET_STEPS)
        wiring["trainer"] = {"train_steps": SAMPLE_PRESET_STEPS, "steps_per_loop": steps}
    given = (user.get("task") or {}).get("init_preset")
    if given is not None and given not in (option, preset):
        raise ConfigError(f"--params_override task.init_preset={given} contradicts --options=preset={option} "
                          "(ExampleGen tokenizes with that checkpoint's vocabulary); name the checkpoint in the preset "
                          "option only")
    return merge_overrides(wiring, user)


def create_pipeline(pipeline_root: str, serving_model_base_path: str, data_dir: str | None = None,
                    params_override: str = "", options: dict | None = None) -> Pipeline:
    """Builds the SST-2 pipeline.

    Args:
        pipeline_root: Artifacts and metadata go here.
        serving_model_base_path: Blessed models are pushed here as new versions.
        data_dir: Directory with ``train.tsv`` and ``dev.tsv`` (default: the shipped sample).
        params_override: Overrides for the fine-tuning Trainer's config.
        options: Pipeline options (see the module docstring).

    Returns:
        The :class:`Pipeline`.

    Raises:
        ConfigError: ``preset`` with ``pretrain_steps`` or ``vocab_size``, a ``preset`` that is
            not a usable local BERT checkpoint, or a ``params_override`` that cannot be parsed or
            names another ``task.init_preset``.
    """
    options = dict(options or {})
    data_dir = io_utils.abspath(data_dir or SAMPLE_DIR)
    sample = _is_sample(data_dir)
    # On the sample a smoke run in seconds; on real SST-2 the measured tiny recipe.
    config = "sample_tiny.yaml" if sample else "sst2_tiny.yaml"
    strategy = options.get("strategy", "one_device")
    pretrain_steps = int(options.get("pretrain_steps", 0))
    preset = options.get("preset", "")
    if preset:  # fine-tune a pre-trained checkpoint, with its vocabulary
        if pretrain_steps > 0:
            raise ConfigError(f"--options=pretrain_steps={pretrain_steps} does not go with preset={preset}: the "
                              "checkpoint is the pre-trained encoder (drop one of them)")
        if "vocab_size" in options:
            raise ConfigError(f"--options=vocab_size does not go with preset={preset}: the checkpoint's vocabulary "
                              "is used")
        config = "sst2_minilm.yaml"  # the measured all-MiniLM-L6-v2 recipe (its init_preset and data are rewired)
        vocabulary = {"preset": preset}
    else:
        vocabulary = {"vocab_size": int(options.get("vocab_size", 8000))}

    example_gen = ExampleGen(inputs=[os.path.join(data_dir, "train.tsv")],
                             eval_inputs=[os.path.join(data_dir, "dev.tsv")], text_field="sentence",
                             label_field="label", max_seq_length=128, **vocabulary)
    statistics = StatisticsGen(example_gen.output("examples"))
    schema = SchemaGen(statistics.output("statistics"), example_gen.output("examples"))
    validator = ExampleValidator(statistics.output("statistics"), schema.output("schema"),
                                 example_gen.output("examples"),
                                 label_drift_threshold=float(options.get("label_drift_threshold", 0.1)),
                                 # SST-2's train split holds phrases (median 8 tokens), dev whole
                                 # sentences (median 24): a known +200% shift, not an anomaly of new data.
                                 length_drift_threshold=float(options.get("length_drift_threshold", 2.5)))
    transform = Transform(example_gen.output("examples"))
    components = [example_gen, statistics, schema, validator, transform]

    base_model = None
    if pretrain_steps > 0:
        pretrainer = Trainer(example_gen.output("examples"), transform.output("transform_graph"), "mlm_pretrain",
                             params_override={"task": {"model": {"size": "tiny"}, "data": {"seq_length": 64}},
                                              "trainer": {"train_steps": pretrain_steps,
                                                          "steps_per_loop": min(pretrain_steps, 500)}},
                             mode="train", strategy=strategy, name="PreTrainer")
        components.append(pretrainer)
        base_model = pretrainer.output("model")
    if preset:  # the checkpoint as ExampleGen recorded it (a directory's absolute path)
        params_override = _preset_overrides(params_override, preset, example_gen.properties["preset"], sample)
    trainer = Trainer(example_gen.output("examples"), transform.output("transform_graph"), "sentence_classification",
                      config_files=[os.path.join(REPO, "configs", "sentence_classification", config)],
                      params_override=params_override, strategy=strategy, base_model=base_model)
    exporter = Exporter(trainer.output("model"), model_name=MODEL_NAME)
    evaluator = Evaluator(exporter.output("saved_model"), example_gen.output("examples"),
                          threshold=float(options.get("threshold", 0.0 if sample else 0.75)),
                          max_drop=float(options.get("max_drop", 0.01)),
                          baseline_model_base_path=serving_model_base_path)
    components += [trainer, exporter, evaluator]
    if str(options.get("quantize", "true")).lower() not in ("false", "0", "no"):
        components.append(Quantizer(exporter.output("saved_model"), forms=("text",),
                                    variants=("float32", "dynamic_int8"),
                                    eval_count=int(options.get("quantize_eval_count", 0 if sample else 872)),
                                    latency_runs=int(options.get("latency_runs", 10))))
    infra = InfraValidator(exporter.output("saved_model"))
    pusher = Pusher(exporter.output("saved_model"), evaluator.output("blessing"), infra.output("infra_blessing"),
                    serving_model_base_path)
    components += [infra, pusher]
    return Pipeline("sst2_sentiment", pipeline_root, components)
