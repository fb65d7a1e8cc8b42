"""llm_pipeline: run a TFX-style pipeline locally, compile it for Kubeflow Pipelines, or print a pushed model's lineage.

Usage: llm_pipeline [run|dag|lineage|compile|run_kfp_local] [flags]  (run is the default; dag = --dry_run)

Examples:
    llm_pipeline --pipeline=pipelines/sst2_sentiment.py                   # sample data, minutes
    llm_pipeline --pipeline=pipelines/sst2_sentiment.py --data_dir=../shared/data/sst2 \\
        --pipeline_root=runs/pipelines/sst2 --serving_model_base_path=runs/serving/sst2
    llm_pipeline --pipeline=pipelines/sst2_sentiment.py --dry_run          # print the DAG
    llm_pipeline --pipeline=pipelines/sst2_sentiment.py --nocache          # run every component again
    llm_pipeline lineage --model_version=1 --serving_model_base_path=runs/serving/sst2
    llm_pipeline --pipeline=pipelines/sst2_sentiment.py --pipeline_root=gs://bucket/pipelines/sst2 \
        --serving_model_base_path=gs://bucket/models/sst2    # artifacts, metadata and pushes on a bucket
    llm_pipeline compile --pipeline=pipelines/sst2_sentiment.py --output=sst2.yaml   # a KFP v2 spec (kfp extra)
    llm_pipeline run_kfp_local --package=sst2.yaml --pipeline_root=runs/kfp/sst2     # run that spec with kfp.local

compile and run_kfp_local need the kfp package (pip install 'llm-tf[kfp]'); docs/pipeline.md,
"On Kubeflow Pipelines and Vertex AI", has the rest.
"""

import json
import os

from absl import flags

from llm_tf import io_utils
from llm_tf.bin import prefer_onednn
from llm_tf.bin.common import run_main
from llm_tf.pipeline.definitions import load_pipeline_module
from llm_tf.pipeline.kfp_compile import DEFAULT_IMAGE  # imports neither TensorFlow nor kfp

prefer_onednn()  # before TensorFlow loads

FLAGS = flags.FLAGS

flags.DEFINE_string("pipeline", None, "Pipeline definition file (defines create_pipeline(...)).")
flags.DEFINE_string("data_dir", None, "Raw data directory passed to the pipeline (default: its shipped sample).")
flags.DEFINE_string("pipeline_root", None, "Artifacts and metadata, local or a bucket (gs://...) "
                    "(default: runs/pipelines/<file name>; compile: runs/kfp/<file name>, the spec's default "
                    "pipeline root; run_kfp_local: the spec's).")
flags.DEFINE_string("serving_model_base_path", None,
                    "Where blessed models are pushed (default: runs/serving/<file name>).")
flags.DEFINE_string("params_override", "", "Overrides of the (fine-tuning) Trainer's config, as llm_train's.")
flags.DEFINE_list("options", [], "Pipeline options key=value (see the pipeline file's docstring).")
flags.DEFINE_bool("cache", True, "Reuse a component's cached result when its inputs and config are unchanged; "
                  "--nocache runs every component (compile: KFP's caching; run_kfp_local: kfp.local's).")
flags.DEFINE_bool("no_cache", False, "Deprecated spelling of --nocache.")
flags.DEFINE_bool("dry_run", False, "Print the DAG and exit.")
flags.DEFINE_integer("model_version", None, "lineage: the pushed version to trace.")
flags.DEFINE_string("metadata", None, "The SQLite metadata store, local or a bucket (default: "
                    "<pipeline_root>/metadata.sqlite; lineage: found from the pushed version).")
flags.DEFINE_string("output", None, "compile: the KFP v2 pipeline spec to write (.yaml), local or a bucket.")
flags.DEFINE_string("image", DEFAULT_IMAGE, "compile: the container image every component runs in (docs/container.md; "
                    "a registry path such as REGISTRY/llm-tf:gpu on a cluster).")
flags.DEFINE_list("trainer_resources", [], "compile: the Trainer tasks' resources on a cluster, key=value: cpu, "
                  "memory, accelerator (e.g. NVIDIA_TESLA_T4), accelerator_count.")
flags.DEFINE_string("package", None, "run_kfp_local: the compiled spec to run with kfp.local (its pipeline parameters "
                    "take --data_dir, --params_override, --options, --serving_model_base_path when given).")

#: The commands (argv words); run is the default.
COMMANDS = ("run", "lineage", "dag", "compile", "run_kfp_local")

#: --help's groups.
FLAG_GROUPS = {
    "pipeline (run, dag, compile)": ["pipeline", "data_dir", "params_override", "options", "cache", "dry_run"],
    "artifacts (run, lineage, compile, run_kfp_local)": ["pipeline_root", "serving_model_base_path", "metadata"],
    "lineage": ["model_version"],
    "Kubeflow Pipelines (compile, run_kfp_local)": ["output", "image", "trainer_resources", "package"],
    "deprecated": ["no_cache"],
}


def _default(flag_value: str | None, kind: str) -> str:
    if flag_value:
        return flag_value
    stem = os.path.splitext(os.path.basename(FLAGS.pipeline or "pipeline"))[0]
    return os.path.join("runs", kind, stem)


def _options(flag: str = "options") -> dict:
    from llm_tf.errors import ConfigError

    options = {}
    for item in FLAGS[flag].value:
        if "=" not in item:
            raise ConfigError(f"--{flag}: expected key=value, got '{item}'")
        key, value = item.split("=", 1)
        options[key.strip()] = value.strip()
    return options


def _check_buckets(pipeline_root: str) -> None:
    """Fails in one line, before anything runs, when a bucket flag's bucket cannot be reached."""
    from llm_tf.errors import DataError

    for flag, path in (("pipeline_root", pipeline_root), ("serving_model_base_path", FLAGS.serving_model_base_path),
                       ("data_dir", FLAGS.data_dir), ("metadata", FLAGS.metadata)):
        if path and io_utils.is_remote(path):
            try:
                if flag == "pipeline_root":
                    io_utils.makedirs(path)
                else:
                    io_utils.exists(path)
            except DataError as e:
                raise DataError(f"--{flag}: {e}") from None


def run_pipeline() -> int:
    """Builds the pipeline from --pipeline and runs it (or prints it with --dry_run)."""
    from llm_tf.errors import ConfigError
    from llm_tf.pipeline.runner import LocalRunner

    if not FLAGS.pipeline:
        raise ConfigError("--pipeline is required (e.g. --pipeline=pipelines/sst2_sentiment.py)")
    module = load_pipeline_module(FLAGS.pipeline)
    root = _default(FLAGS.pipeline_root, "pipelines")
    pipeline = module.create_pipeline(pipeline_root=root,
                                      serving_model_base_path=_default(FLAGS.serving_model_base_path, "serving"),
                                      data_dir=FLAGS.data_dir, params_override=FLAGS.params_override,
                                      options=_options())
    if FLAGS.metadata:
        pipeline.metadata_path = io_utils.abspath(FLAGS.metadata)
    if FLAGS.dry_run:
        print(pipeline.describe())
        return 0
    _check_buckets(root)
    from llm_tf.bin import startup

    startup.log_start()
    result = LocalRunner(enable_cache=FLAGS.cache and not FLAGS.no_cache).run(pipeline)
    return 0 if result.succeeded else 1


def run_compile() -> int:
    """Compiles --pipeline to a KFP v2 spec at --output; prints a JSON line (tasks, gates, parameters)."""
    from llm_tf.errors import ConfigError
    from llm_tf.pipeline.definitions import PipelineArgs
    from llm_tf.pipeline.kfp_compile import compile_pipeline, import_kfp

    import_kfp()
    if not FLAGS.pipeline:
        raise ConfigError("--pipeline is required (e.g. --pipeline=pipelines/sst2_sentiment.py)")
    if not FLAGS.output:
        raise ConfigError("compile needs --output (the spec file, e.g. --output=sst2.yaml)")
    args = PipelineArgs(pipeline_root=_default(FLAGS.pipeline_root, "kfp"),
                        serving_model_base_path=_default(FLAGS.serving_model_base_path, "serving"),
                        data_dir=FLAGS.data_dir, params_override=FLAGS.params_override, options=_options())
    summary = compile_pipeline(FLAGS.pipeline, FLAGS.output, args, image=FLAGS.image,
                               enable_cache=FLAGS.cache and not FLAGS.no_cache,
                               trainer_resources=_options("trainer_resources"))
    print(json.dumps(summary))
    return 0


def run_kfp_local() -> int:
    """Runs the compiled spec --package with kfp.local in this environment; prints a JSON line."""
    from llm_tf.errors import ConfigError
    from llm_tf.pipeline.kfp_local import run_compiled

    if not FLAGS.package:
        raise ConfigError("run_kfp_local needs --package (a spec written by llm_pipeline compile)")
    arguments = {}
    for flag in ("data_dir", "params_override", "serving_model_base_path"):
        if FLAGS[flag].present:
            arguments[flag] = io_utils.abspath(FLAGS[flag].value) if flag != "params_override" else FLAGS[flag].value
    if FLAGS["options"].present:
        arguments["options"] = _options()
    result = run_compiled(FLAGS.package, FLAGS.pipeline_root, arguments,
                          enable_cache=FLAGS.cache and not FLAGS.no_cache)
    print(json.dumps(result))
    return 0


def run_lineage() -> int:
    """Prints the lineage of --model_version."""
    from llm_tf.errors import ConfigError
    from llm_tf.pipeline import lineage
    from llm_tf.pipeline.components.pusher import pushed_info
    from llm_tf.pipeline.dag import METADATA_FILE
    from llm_tf.pipeline.metadata import MetadataStore

    if FLAGS.model_version is None:
        raise ConfigError("lineage needs --model_version=N")
    path = FLAGS.metadata
    base = FLAGS.serving_model_base_path
    if not path and base:
        info = pushed_info(os.path.join(base, str(FLAGS.model_version)))
        if info:
            path = info.get("metadata_path") or os.path.join(info["pipeline_root"], METADATA_FILE)
    if not path:
        path = os.path.join(_default(FLAGS.pipeline_root, "pipelines"), METADATA_FILE)
    if not io_utils.isfile(path):
        raise ConfigError(f"{path}: no metadata store (pass --metadata, --pipeline_root or --serving_model_base_path)")
    with MetadataStore(path) as store:
        print(lineage.format_lineage(store, FLAGS.model_version, base))
    return 0


def main(argv) -> int:
    """``llm_pipeline [run|lineage|dag|compile|run_kfp_local]``; the default command is ``run``."""
    from llm_tf.errors import ConfigError

    for flag in ("pipeline", "data_dir", "pipeline_root", "serving_model_base_path", "metadata", "output", "package"):
        io_utils.check_path(getattr(FLAGS, flag) or "", f"--{flag}")
    command = argv[1] if len(argv) > 1 else "run"
    if len(argv) > 2 or command not in COMMANDS:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])} (commands: {', '.join(COMMANDS)})")
    if command == "lineage":
        return run_lineage()
    if command == "compile":
        return run_compile()
    if command == "run_kfp_local":
        return run_kfp_local()
    if command == "dag":
        FLAGS.dry_run = True
    return run_pipeline()


def run() -> None:
    """Console-script entry point."""
    run_main(main, allow_args=True, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()
