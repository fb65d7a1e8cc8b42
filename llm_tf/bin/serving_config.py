"""llm_serving_config: write models.config, batching_parameters.txt and monitoring.config.

The files are the text protos ``tensorflow_model_server`` reads with ``--model_config_file``,
``--batching_parameters_file`` and ``--monitoring_config_file`` (``llm_serve`` reads them too).

Example:
    llm_serving_config --output_dir=serving --model_name=sst2 --model_base_path=/models/sst2 \\
        --version_policy=specific --versions=1,2 --version_labels=stable=1,canary=2 \\
        --max_batch_size=32 --allowed_batch_sizes=8,16,32
"""

from collections.abc import Sequence

from absl import flags

from llm_tf import io_utils
from llm_tf.bin.common import run_main
from llm_tf.errors import ConfigError
from llm_tf.serving.config import BatchingSpec, ModelSpec, MonitoringSpec
from llm_tf.serving.config_files import write_serving_configs

FLAGS = flags.FLAGS

flags.DEFINE_string("output_dir", None, "Directory to write the three files into (created if missing).")
flags.DEFINE_string("model_name", None, "Model name clients use in requests ([A-Za-z0-9_.-]).")
flags.DEFINE_string("model_base_path", None, "Directory of integer version subdirectories, as the server sees it "
                    "(absolute for tensorflow_model_server; inside the container for docker/k8s).")
flags.DEFINE_enum("version_policy", "latest", ["latest", "all", "specific"],
                  "Which versions to serve: the --num_versions latest, all on disk, or exactly --versions.")
flags.DEFINE_integer("num_versions", 1, "With --version_policy=latest: how many of the latest versions to serve.")
flags.DEFINE_list("versions", [], "With --version_policy=specific: the versions to serve, e.g. 1,2.")
flags.DEFINE_string("version_labels", "", "Version labels, e.g. stable=1,canary=2.")
flags.DEFINE_integer("max_batch_size", 32, "Batching: largest batch the model runs.")
flags.DEFINE_integer("batch_timeout_micros", 1000, "Batching: how long a partial batch waits for more requests.")
flags.DEFINE_list("allowed_batch_sizes", [], "Batching: sizes batches are padded up to, increasing, the last equal "
                  "to --max_batch_size (e.g. 8,16,32). Empty: any size.")
flags.DEFINE_integer("num_batch_threads", 2, "Batching: threads running batches (about the number of cores).")
flags.DEFINE_integer("max_enqueued_batches", 100, "Batching: queued batches before requests are refused.")
flags.DEFINE_bool("pad_variable_length_inputs", False, "Batching: pad inputs of different lengths to one shape.")
flags.DEFINE_bool("enable_monitoring", True, "Expose Prometheus metrics on the REST port.")
flags.DEFINE_string("monitoring_path", "/monitoring/prometheus/metrics", "URL path of the Prometheus metrics.")
flags.mark_flags_as_required(["output_dir", "model_name", "model_base_path"])

#: --help's groups.
FLAG_GROUPS = {
    "output (required: --output_dir)": ["output_dir"],
    "model and versions (required: --model_name, --model_base_path)": ["model_name", "model_base_path",
                                                                        "version_policy", "num_versions", "versions",
                                                                        "version_labels"],
    "batching (batching_parameters.txt)": ["max_batch_size", "batch_timeout_micros", "allowed_batch_sizes",
                                           "num_batch_threads", "max_enqueued_batches", "pad_variable_length_inputs"],
    "monitoring (monitoring.config)": ["enable_monitoring", "monitoring_path"],
}


def specs_from_flags() -> tuple[ModelSpec, BatchingSpec, MonitoringSpec]:
    """Builds the (ModelSpec, BatchingSpec, MonitoringSpec) described by the flags.

    Returns:
        A tuple of the three specs.

    Raises:
        ConfigError: A malformed list or label, or a flag that does not go with the policy.
    """
    if FLAGS["versions"].present and FLAGS.version_policy != "specific":
        raise ConfigError("--versions is only used with --version_policy=specific")
    if FLAGS["num_versions"].present and FLAGS.version_policy != "latest":
        raise ConfigError("--num_versions is only used with --version_policy=latest")
    model = ModelSpec(
        name=FLAGS.model_name,
        base_path=FLAGS.model_base_path,
        version_policy=FLAGS.version_policy,
        num_versions=FLAGS.num_versions,
        versions=parse_int_list(FLAGS.versions, "--versions"),
        version_labels=parse_version_labels(FLAGS.version_labels),
    )
    batching = BatchingSpec(
        max_batch_size=FLAGS.max_batch_size,
        batch_timeout_micros=FLAGS.batch_timeout_micros,
        allowed_batch_sizes=parse_int_list(FLAGS.allowed_batch_sizes, "--allowed_batch_sizes"),
        num_batch_threads=FLAGS.num_batch_threads,
        max_enqueued_batches=FLAGS.max_enqueued_batches,
        pad_variable_length_inputs=FLAGS.pad_variable_length_inputs,
    )
    monitoring = MonitoringSpec(enable=FLAGS.enable_monitoring, path=FLAGS.monitoring_path)
    return model, batching, monitoring


def parse_version_labels(text: str) -> dict[str, int]:
    """Parses ``stable=1,canary=2`` into ``{"stable": 1, "canary": 2}``.

    Args:
        text: Comma-separated ``label=version`` pairs; empty gives ``{}``.

    Returns:
        Label -> version.

    Raises:
        ConfigError: A pair without ``=``, a non-integer version or a repeated label.
    """
    labels: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, sep, version = item.partition("=")
        label, version = label.strip(), version.strip()
        if not sep or not label:
            raise ConfigError(f"--version_labels: {item!r} is not label=version")
        if label in labels:
            raise ConfigError(f"--version_labels: label {label!r} given twice")
        labels[label] = parse_int(version, f"--version_labels: label {label!r}")
    return labels


def parse_int_list(items: Sequence[str], what: str) -> tuple[int, ...]:
    """Parses the items of a list flag (``--versions=1,2,3``) into ``(1, 2, 3)``.

    Args:
        items: The flag's items; empty gives ``()``.
        what: Name used in the error message.

    Returns:
        The integers, in order.

    Raises:
        ConfigError: An item is not an integer.
    """
    return tuple(parse_int(item.strip(), what) for item in items if item.strip())


def parse_int(text: str, what: str) -> int:
    """Parses one integer.

    Args:
        text: The text.
        what: Name used in the error message.

    Returns:
        The integer.

    Raises:
        ConfigError: ``text`` is not an integer.
    """
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not an integer") from None


def main(argv: list[str]) -> int:
    """Writes the three config files and prints their paths with the matching server flags."""
    for flag in ("output_dir", "model_base_path"):
        io_utils.check_path(getattr(FLAGS, flag), f"--{flag}")
    model, batching, monitoring = specs_from_flags()
    paths = write_serving_configs(FLAGS.output_dir, [model], batching, monitoring)
    for flag, path in paths.items():
        print(f"--{flag}={path}")
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()
