"""The built-in components, each a spec plus an executor that calls the library.

How the TFX data components map onto :func:`llm_tf.data.prepare.prepare` (one streaming,
atomic pass that reads, splits, writes TFRecords, learns the vocabulary, computes statistics
and infers a schema; splitting it would mean reimplementing it):

* :class:`ExampleGen` runs ``prepare`` once; its ``examples`` artifact is the whole prepared
  directory (TFRecords, tokenizer, labels, statistics, schema).
* :class:`StatisticsGen`, :class:`SchemaGen` and :class:`Transform` publish their part of it
  as their own typed, immutable artifacts (``statistics.json``; a schema inferred from the
  train split's statistics with ``llm_tf.data.schema.infer_schema``, or a curated schema
  file; the tokenizer and label vocabulary), with their key facts as properties.
* :class:`ExampleValidator` validates every split's statistics against that schema with
  ``llm_tf.data.schema.validate`` (what ``llm_prepare --validate_against`` runs) and stops
  the run on anomalies.

Distillation adds :class:`TransferSetGen` (the transfer set, ``llm_transfer_set``'s library
call; an ExampleGen given it as its ``transfer_set`` input prepares it) and
:class:`TeacherLogits` (the teacher's logits for the student's examples, computed once); the
Trainer takes ``teacher_model`` and ``teacher_logits``, and the Evaluator a
``reference_evaluation`` (the teacher's) that the student must reach a share of.
"""

from llm_tf.pipeline.components.evaluator import Evaluator
from llm_tf.pipeline.components.example_gen import ExampleGen
from llm_tf.pipeline.components.example_validator import ExampleValidator
from llm_tf.pipeline.components.exporter import Exporter
from llm_tf.pipeline.components.infra_validator import InfraValidator
from llm_tf.pipeline.components.pusher import Pusher
from llm_tf.pipeline.components.quantizer import Quantizer
from llm_tf.pipeline.components.schema_gen import SchemaGen
from llm_tf.pipeline.components.statistics_gen import StatisticsGen
from llm_tf.pipeline.components.teacher_logits import TeacherLogits
from llm_tf.pipeline.components.trainer import Trainer
from llm_tf.pipeline.components.transfer_set_gen import TransferSetGen
from llm_tf.pipeline.components.transform import Transform

__all__ = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Evaluator",
           "Exporter", "Quantizer", "InfraValidator", "Pusher", "TransferSetGen", "TeacherLogits"]
