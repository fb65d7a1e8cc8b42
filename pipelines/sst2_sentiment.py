"""SST-2 sentiment: raw TSV files in, a blessed, quantized, pushed SavedModel out.

Run::

    llm_pipeline --pipeline=pipelines/sst2_sentiment.py                      # shipped sample, minutes
    llm_pipeline --pipeline=pipelines/sst2_sentiment.py --data_dir=../shared/data/sst2 \\
        --pipeline_root=runs/pipelines/sst2 --serving_model_base_path=runs/serving/sst2

``data_dir`` holds ``train.tsv`` and ``dev.tsv`` (columns ``sentence``, ``label``).
``params_override`` goes to the fine-tuning Trainer (``trainer.train_steps=...``). Options
(``--options=key=value,...`` on the command line): ``pretrain_steps`` (>0 adds MLM
pre-training on the same text before fine-tuning), ``threshold``, ``max_drop``,
``quantize`` (false skips the Quantizer), ``vocab_size``, ``strategy``,
``label_drift_threshold``, ``length_drift_threshold`` (2.5: SST-2's dev sentences are 3x as
long as its train phrases by design).
"""

import os

from llm_tf.pipeline.components import (Evaluator, ExampleGen, ExampleValidator, Exporter, InfraValidator, Pusher,
                                        Quantizer, SchemaGen, StatisticsGen, Trainer, Transform)
from llm_tf.pipeline.dag import Pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "samples", "sst2_sample")
MODEL_NAME = "sst2"


def _is_sample(data_dir: str) -> bool:
    return os.path.abspath(data_dir) == SAMPLE_DIR


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
    """
    options = dict(options or {})
    data_dir = os.path.abspath(data_dir or SAMPLE_DIR)
    sample = _is_sample(data_dir)
    # On the sample a smoke run in seconds; on real SST-2 the measured tiny recipe.
    config = "sample_tiny.yaml" if sample else "sst2_tiny.yaml"
    strategy = options.get("strategy", "one_device")

    example_gen = ExampleGen(inputs=[os.path.join(data_dir, "train.tsv")], eval_inputs=[os.path.join(data_dir, "dev.tsv")],
                             text_field="sentence", label_field="label", vocab_size=int(options.get("vocab_size", 8000)),
                             max_seq_length=128)
    statistics = StatisticsGen(example_gen.output("examples"))
    schema = SchemaGen(statistics.output("statistics"), example_gen.output("examples"))
    validator = ExampleValidator(statistics.output("statistics"), schema.output("schema"), example_gen.output("examples"),
                                 label_drift_threshold=float(options.get("label_drift_threshold", 0.1)),
                                 # SST-2's train split holds phrases (median 8 tokens), dev whole
                                 # sentences (median 24): a known +200% shift, not an anomaly of new data.
                                 length_drift_threshold=float(options.get("length_drift_threshold", 2.5)))
    transform = Transform(example_gen.output("examples"))
    components = [example_gen, statistics, schema, validator, transform]

    base_model = None
    pretrain_steps = int(options.get("pretrain_steps", 0))
    if pretrain_steps > 0:
        pretrainer = Trainer(example_gen.output("examples"), transform.output("transform_graph"), "mlm_pretrain",
                             params_override={"task": {"model": {"size": "tiny"}, "data": {"seq_length": 64}},
                                              "trainer": {"train_steps": pretrain_steps,
                                                          "steps_per_loop": min(pretrain_steps, 500)}},
                             mode="train", strategy=strategy, name="PreTrainer")
        components.append(pretrainer)
        base_model = pretrainer.output("model")
    trainer = Trainer(example_gen.output("examples"), transform.output("transform_graph"), "sentence_classification",
                      config_files=[os.path.join(REPO, "configs", "sentence_classification", config)],
                      params_override=params_override, strategy=strategy, base_model=base_model)
    exporter = Exporter(trainer.output("model"), model_name=MODEL_NAME)
    evaluator = Evaluator(exporter.output("saved_model"), example_gen.output("examples"),
                          threshold=float(options.get("threshold", 0.0 if sample else 0.75)),
                          max_drop=float(options.get("max_drop", 0.01)), baseline_model_base_path=serving_model_base_path)
    components += [trainer, exporter, evaluator]
    if str(options.get("quantize", "true")).lower() not in ("false", "0", "no"):
        components.append(Quantizer(exporter.output("saved_model"), forms=("text",), variants=("float32", "dynamic_int8"),
                                    eval_count=int(options.get("quantize_eval_count", 0 if sample else 872)),
                                    latency_runs=int(options.get("latency_runs", 10))))
    infra = InfraValidator(exporter.output("saved_model"))
    pusher = Pusher(exporter.output("saved_model"), evaluator.output("blessing"), infra.output("infra_blessing"),
                    serving_model_base_path)
    components += [infra, pusher]
    return Pipeline("sst2_sentiment", pipeline_root, components)
