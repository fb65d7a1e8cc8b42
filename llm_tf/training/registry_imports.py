"""Imports every built-in experiment, which registers it with :mod:`llm_tf.training.tasks`.

As Model Garden's ``official.common.registry_imports``: the registry itself imports no
experiment (an experiment may use the registry, e.g. a distillation teacher rebuilt from its
own ``params.yaml``), so entry points import this module once::

    from llm_tf.training import registry_imports  # noqa: F401  (registers the experiments)

A new experiment module is added to the list below.
"""

from llm_tf.training import (  # noqa: F401
    causal_lm,
    distillation,
    mlm_pretrain,
    sentence_classification,
    token_classification,
)
