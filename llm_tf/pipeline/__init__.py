"""A TFX-style pipeline: typed components, immutable artifacts, SQLite metadata, a local runner.

Modules (one job each):

* :mod:`~llm_tf.pipeline.artifacts`: the :class:`Artifact` record.
* :mod:`~llm_tf.pipeline.component`: component spec (inputs, outputs, properties) + executor.
* :mod:`~llm_tf.pipeline.dag`: a :class:`Pipeline` (components in dependency order, the DAG).
* :mod:`~llm_tf.pipeline.metadata`: the SQLite metadata store.
* :mod:`~llm_tf.pipeline.fingerprint`: code version and cache fingerprints.
* :mod:`~llm_tf.pipeline.runner`: the local runner (caching, resume, progress, summary).
* :mod:`~llm_tf.pipeline.lineage`: what produced a pushed model version.
* :mod:`~llm_tf.pipeline.definitions`: load a pipeline definition file, build its pipeline.
* :mod:`~llm_tf.pipeline.kfp_compile`, :mod:`~llm_tf.pipeline.kfp_executor`,
  :mod:`~llm_tf.pipeline.kfp_local`: the same pipelines on Kubeflow Pipelines v2 (compile, the
  task body, a compiled spec run by ``kfp.local``).
* :mod:`~llm_tf.pipeline.components`: ExampleGen ... Pusher, each calling the library the
  binaries call.
"""
