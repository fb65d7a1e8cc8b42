"""CoNLL-2003 NER: token classification from raw CoNLL files to a pushed SavedModel.

Run::

    llm_pipeline --pipeline=pipelines/conll_ner.py                          # shipped sample
    llm_pipeline --pipeline=pipelines/conll_ner.py --data_dir=../shared/data/conll2003

``data_dir`` holds ``train.txt`` and ``dev.txt``. The Evaluator's metric is seqeval entity
F1, sliced by entity type and sentence length. Options: ``pretrain_steps``, ``threshold``,
``max_drop``, ``quantize`` (default false: the NER TFLite path is the tokens form only),
``strategy``.
"""

import os

from llm_tf import io_utils
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "samples", "conll_sample")
MODEL_NAME = "conll"


def create_pipeline(pipeline_root: str, serving_model_base_path: str, data_dir: str | None = None,
                    params_override: str = "", options: dict | None = None) -> Pipeline:
    """Builds the CoNLL NER pipeline (arguments as in ``pipelines/sst2_sentiment.py``)."""
    options = dict(options or {})
    data_dir = io_utils.abspath(data_dir or SAMPLE_DIR)
    sample = data_dir == SAMPLE_DIR
    strategy = options.get("strategy", "one_device")
    example_gen = ExampleGen(inputs=[os.path.join(data_dir, "train.txt")],
                             eval_inputs=[os.path.join(data_dir, "dev.txt")], task="token_classification",
                             lower_case=False, vocab_size=int(options.get("vocab_size", 8000)))
    statistics = StatisticsGen(example_gen.output("examples"))
    schema = SchemaGen(statistics.output("statistics"), example_gen.output("examples"))
    validator = ExampleValidator(statistics.output("statistics"), schema.output("schema"),
                                 example_gen.output("examples"),
                                 label_drift_threshold=float(options.get("label_drift_threshold",
                                                                         0.2 if sample else 0.1)),
                                 # The sample has 2 dev sentences: their median length says little.
                                 length_drift_threshold=float(options.get("length_drift_threshold",
                                                                          2.0 if sample else 0.5)))
    transform = Transform(example_gen.output("examples"))
    components = [example_gen, statistics, schema, validator, transform]
    base_model = None
    pretrain_steps = int(options.get("pretrain_steps", 0))
    if pretrain_steps > 0:
        pretrainer = Trainer(example_gen.output("examples"), transform.output("transform_graph"), "mlm_pretrain",
                             params_override={"task": {"model": {"size": "tiny"}},
                                              "trainer": {"train_steps": pretrain_steps,
                                                          "steps_per_loop": min(pretrain_steps, 500)}},
                             mode="train", strategy=strategy, name="PreTrainer")
        components.append(pretrainer)
        base_model = pretrainer.output("model")
    overrides = params_override
    if sample and not overrides:
        overrides = ("trainer.train_steps=40,trainer.steps_per_loop=20,task.data.seq_length=32,"
                     "task.data.global_batch_size=8")
    trainer = Trainer(example_gen.output("examples"), transform.output("transform_graph"), "token_classification",
                      config_files=[os.path.join(REPO, "configs", "token_classification", "conll_tiny.yaml")],
                      params_override=overrides, strategy=strategy, base_model=base_model)
    exporter = Exporter(trainer.output("model"), model_name=MODEL_NAME)
    evaluator = Evaluator(exporter.output("saved_model"), example_gen.output("examples"),
                          threshold=float(options.get("threshold", 0.0 if sample else 0.6)),
                          max_drop=float(options.get("max_drop", 0.01)),
                          baseline_model_base_path=serving_model_base_path)
    components += [trainer, exporter, evaluator]
    if str(options.get("quantize", "false")).lower() in ("true", "1", "yes"):
        components.append(Quantizer(exporter.output("saved_model"), forms=("tokens",), variants=("float32",)))
    infra = InfraValidator(exporter.output("saved_model"))
    pusher = Pusher(exporter.output("saved_model"), evaluator.output("blessing"), infra.output("infra_blessing"),
                    serving_model_base_path)
    components += [infra, pusher]
    return Pipeline("conll_ner", pipeline_root, components)
