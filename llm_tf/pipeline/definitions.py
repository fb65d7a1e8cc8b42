"""Pipeline definition files (``pipelines/*.py``): load one and build its :class:`Pipeline`.

A definition file defines ``create_pipeline(pipeline_root, serving_model_base_path, data_dir,
params_override, options)``. ``llm_pipeline`` builds the pipeline from it once and runs it
locally; under Kubeflow Pipelines every component's container builds it again from the same
file and arguments and runs its one component (:mod:`llm_tf.pipeline.kfp_executor`). This
module imports neither TensorFlow nor kfp.
"""

import dataclasses
import importlib.util
import os
import types

from llm_tf import io_utils
from llm_tf.pipeline.dag import Pipeline
from llm_tf.pipeline.errors import PipelineError


@dataclasses.dataclass
class PipelineArgs:
    """The arguments ``create_pipeline`` takes, besides the file.

    Attributes:
        pipeline_root: Artifacts (and, locally, the metadata store) go here.
        serving_model_base_path: Blessed models are pushed here as new versions.
        data_dir: The raw data directory (None: the definition's shipped sample).
        params_override: Overrides of the (fine-tuning) Trainer's config, as ``llm_train``'s.
        options: The definition's own options (``key -> value`` text, see its docstring).
    """

    pipeline_root: str
    serving_model_base_path: str
    data_dir: str | None = None
    params_override: str = ""
    options: dict[str, str] = dataclasses.field(default_factory=dict)


def load_pipeline_module(path: str) -> types.ModuleType:
    """Imports a pipeline definition file.

    Args:
        path: A local Python file.

    Returns:
        The module.

    Raises:
        PipelineError: A remote or missing file, or no ``create_pipeline`` in it.
    """
    if io_utils.is_remote(path):
        raise PipelineError(f"--pipeline: {path}: the pipeline definition must be a local Python file")
    if not os.path.isfile(path):
        raise PipelineError(f"{path}: no such pipeline file")
    name = "llm_pipeline_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "create_pipeline"):
        raise PipelineError(f"{path}: defines no create_pipeline(pipeline_root, serving_model_base_path, ...)")
    return module


def build_pipeline(path: str, args: PipelineArgs) -> Pipeline:
    """Loads definition file ``path`` and calls its ``create_pipeline`` with ``args``.

    Args:
        path: The pipeline definition file.
        args: Its arguments.

    Returns:
        The :class:`Pipeline`.

    Raises:
        PipelineError: See :func:`load_pipeline_module`; the definition returned no Pipeline.
        LlmTfError: Whatever the definition raises for bad arguments (ConfigError, ...).
    """
    module = load_pipeline_module(path)
    pipeline = module.create_pipeline(pipeline_root=args.pipeline_root,
                                      serving_model_base_path=args.serving_model_base_path,
                                      data_dir=args.data_dir or None, params_override=args.params_override,
                                      options=dict(args.options))
    if not isinstance(pipeline, Pipeline):
        raise PipelineError(f"{path}: create_pipeline returned {type(pipeline).__name__}, not a Pipeline")
    return pipeline
