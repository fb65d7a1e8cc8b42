"""llm_serve: serve exported models over TF Serving's gRPC and REST APIs.

With ``--backend=auto`` (default) it runs the real ``tensorflow_model_server`` when one is
installed (``TF_SERVING_BIN`` or on ``PATH``), with the same flags, and otherwise the embedded
TF-Serving-compatible server of ``llm_tf.serving``.

Example:
    llm_serve --model_name=sst2 --model_base_path=/models/sst2 --port=8500 --rest_api_port=8501
    llm_serve --model_config_file=serving/models.config --enable_batching \\
        --batching_parameters_file=serving/batching_parameters.txt
"""

import os
import shutil
import sys

from absl import flags

from llm_tf import io_utils
from llm_tf.bin.common import run_main
from llm_tf.errors import ConfigError, DataError

FLAGS = flags.FLAGS

flags.DEFINE_enum("backend", "auto", ["auto", "embedded", "tf_serving"],
                  "auto: tensorflow_model_server when installed (TF_SERVING_BIN or PATH), else embedded; "
                  "embedded: the in-process server; tf_serving: the real binary or an error.")
flags.DEFINE_string("host", "localhost", "Interface to bind gRPC and REST to (embedded; 0.0.0.0 for all). "
                    "tensorflow_model_server always binds all interfaces.")
flags.DEFINE_integer("port", 8500, "gRPC port (0: a free port, embedded only).")
flags.DEFINE_integer("rest_api_port", 8501, "REST API port; 0 disables REST.")
flags.DEFINE_string("model_name", "default", "Name of the model (with --model_base_path).")
flags.DEFINE_string("model_base_path", None, "Directory of integer version subdirectories of one model, local "
                    "or a bucket (gs://...).")
flags.DEFINE_string("model_config_file", None, "ModelServerConfig text proto (several models, policies, labels).")
flags.DEFINE_bool("enable_batching", False, "Batch concurrent requests server-side.")
flags.DEFINE_string("batching_parameters_file", None, "BatchingParameters text proto (with --enable_batching).")
flags.DEFINE_enum("batching_engine", "python", ["python", "tensorflow"], "Embedded server, with --enable_batching: "
                  "python: our batch scheduler; tensorflow: TensorFlow's BatchFunction op (its C++ batch scheduler) "
                  "for signatures with fixed shapes after the batch axis. tensorflow_model_server always batches "
                  "in C++.")
flags.DEFINE_float("file_system_poll_wait_seconds", 1, "Seconds between polls for new versions; 0 loads once.")
flags.DEFINE_string("monitoring_config_file", None, "MonitoringConfig text proto (Prometheus metrics on REST).")
flags.DEFINE_integer("grpc_max_threads", 64, "gRPC worker threads; each request in flight holds one, so this caps "
                     "concurrent requests (and batch sizes under --enable_batching).")
flags.DEFINE_integer("rest_api_num_threads", 64, "REST requests handled at once; each REST request in flight holds "
                     "one thread (so this caps REST batch sizes under --enable_batching).", lower_bound=1)
flags.DEFINE_integer("max_message_bytes", 64 * 1024 * 1024, "Largest gRPC message and REST body (bytes).")
flags.DEFINE_integer("tensorflow_intra_op_parallelism", 0, "Threads one TensorFlow op may use; 0: automatic (embedded "
                     "with batching: cores / num_batch_threads, else TensorFlow's default).", lower_bound=0)
flags.DEFINE_integer("tensorflow_inter_op_parallelism", 0, "Threads running independent TensorFlow ops; 0: automatic "
                     "(embedded with batching: num_batch_threads, else TensorFlow's default).", lower_bound=0)
flags.DEFINE_bool("prefer_tflite_model", False, "TF Serving's (EXPERIMENTAL there): serve a version from its "
                  "model.tflite (llm_export --tflite_model) instead of saved_model.pb where it has one.")
flags.DEFINE_integer("num_tflite_pools", None, "TF Serving's: TFLite interpreters per version (one request each at a "
                     "time); default: the CPU count.", lower_bound=0)
flags.DEFINE_integer("num_tflite_interpreters_per_pool", 1, "TF Serving's: above 1, concurrent requests to a TFLite "
                     "version are batched (num_tflite_pools batch threads).", lower_bound=0)

#: --help's groups.
FLAG_GROUPS = {
    "backend": ["backend"],
    "models (--model_base_path with --model_name, or --model_config_file)": [
        "model_name", "model_base_path", "model_config_file", "file_system_poll_wait_seconds"],
    "network": ["host", "port", "rest_api_port", "max_message_bytes", "grpc_max_threads", "rest_api_num_threads"],
    "batching and threads": ["enable_batching", "batching_parameters_file", "batching_engine",
                             "tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism"],
    "monitoring": ["monitoring_config_file"],
    "TFLite (--prefer_tflite_model)": ["prefer_tflite_model", "num_tflite_pools", "num_tflite_interpreters_per_pool"],
}

TF_SERVING_ENV = "TF_SERVING_BIN"
TF_SERVING_BINARY = "tensorflow_model_server"


def find_tf_serving() -> str | None:
    """Returns the ``tensorflow_model_server`` to run: ``$TF_SERVING_BIN``, else ``PATH``, else None.

    Raises:
        ConfigError: ``TF_SERVING_BIN`` is set but names no executable file.
    """
    path = os.environ.get(TF_SERVING_ENV)
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ConfigError(f"{TF_SERVING_ENV}={path} is not an executable file")
        return path
    return shutil.which(TF_SERVING_BINARY)


def tf_serving_argv(binary: str) -> list[str]:
    """Translates our flags to ``tensorflow_model_server`` flags.

    Args:
        binary: The binary (argv[0]).

    Returns:
        The argv to exec.
    """
    argv = [binary, f"--port={FLAGS.port}", f"--rest_api_port={FLAGS.rest_api_port}"]
    if FLAGS.model_config_file:
        argv.append(f"--model_config_file={FLAGS.model_config_file}")
    else:
        argv += [f"--model_name={FLAGS.model_name}", f"--model_base_path={io_utils.abspath(FLAGS.model_base_path)}"]
    if FLAGS.enable_batching or FLAGS.batching_parameters_file:
        argv.append("--enable_batching=true")
    if FLAGS.batching_parameters_file:
        argv.append(f"--batching_parameters_file={FLAGS.batching_parameters_file}")
    argv.append(f"--file_system_poll_wait_seconds={int(round(FLAGS.file_system_poll_wait_seconds))}")
    if FLAGS.monitoring_config_file:
        argv.append(f"--monitoring_config_file={FLAGS.monitoring_config_file}")
    for flag in ("grpc_max_threads", "rest_api_num_threads"):
        if FLAGS[flag].present:
            argv.append(f"--{flag}={getattr(FLAGS, flag)}")
    for flag in ("tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism"):
        if getattr(FLAGS, flag):
            argv.append(f"--{flag}={getattr(FLAGS, flag)}")
    if FLAGS.prefer_tflite_model:
        argv.append("--prefer_tflite_model=true")
    for flag in ("num_tflite_pools", "num_tflite_interpreters_per_pool"):
        if FLAGS[flag].present:
            argv.append(f"--{flag}={getattr(FLAGS, flag)}")
    if FLAGS["max_message_bytes"].present:
        size = FLAGS.max_message_bytes
        argv.append(f"--grpc_channel_arguments=grpc.max_send_message_length={size},"
                    f"grpc.max_receive_message_length={size}")
    return argv


def tf_serving_env() -> dict[str, str]:
    """The environment for ``tensorflow_model_server``, after putting back the real stderr on fd 2.

    ``TF_CPP_MIN_LOG_LEVEL`` is what the user set (or unset): the server's INFO lines ("Running
    gRPC ModelServer at ...") are its start-up report, not noise.
    """
    from llm_tf import bin as bin_package
    from llm_tf.bin import logfilter

    logfilter.uninstall()
    env = dict(os.environ)
    env.pop(bin_package.TF_CPP_ENV, None)
    if bin_package.USER_TF_CPP_MIN_LOG_LEVEL:
        env[bin_package.TF_CPP_ENV] = bin_package.USER_TF_CPP_MIN_LOG_LEVEL
    return env


def options_from_flags():
    """Builds the embedded server's :class:`~llm_tf.serving.server.ServerOptions` from the flags."""
    from llm_tf.serving.server import ServerOptions

    return ServerOptions(
        host=FLAGS.host,
        port=FLAGS.port,
        rest_api_port=FLAGS.rest_api_port,
        model_name=FLAGS.model_name,
        model_base_path=FLAGS.model_base_path,
        model_config_file=FLAGS.model_config_file,
        enable_batching=FLAGS.enable_batching,
        batching_parameters_file=FLAGS.batching_parameters_file,
        batching_engine=FLAGS.batching_engine,
        file_system_poll_wait_seconds=FLAGS.file_system_poll_wait_seconds,
        monitoring_config_file=FLAGS.monitoring_config_file,
        max_message_bytes=FLAGS.max_message_bytes,
        grpc_max_threads=FLAGS.grpc_max_threads,
        rest_api_num_threads=FLAGS.rest_api_num_threads,
        tensorflow_intra_op_parallelism=FLAGS.tensorflow_intra_op_parallelism,
        tensorflow_inter_op_parallelism=FLAGS.tensorflow_inter_op_parallelism,
        prefer_tflite_model=FLAGS.prefer_tflite_model,
        num_tflite_pools=FLAGS.num_tflite_pools,
        num_tflite_interpreters_per_pool=FLAGS.num_tflite_interpreters_per_pool,
    )


def _found(path: str, flag: str, check) -> bool:
    """``check(path)`` (local or a bucket); an unreachable bucket is a one-line error naming ``flag``."""
    try:
        return check(io_utils.check_path(path, flag))
    except DataError as e:
        raise ConfigError(f"{flag}: {e}") from None


def check_flags() -> None:
    """Checks what both backends need before starting either.

    Raises:
        ConfigError: No model, both ways of naming models, a missing base path or config file,
            ``--batching_engine=tensorflow`` without batching.
    """
    if FLAGS.model_config_file and FLAGS.model_base_path:
        raise ConfigError("give either --model_config_file or --model_base_path, not both")
    if not FLAGS.model_config_file and not FLAGS.model_base_path:
        raise ConfigError("no model to serve: pass --model_base_path (with --model_name) or --model_config_file")
    if FLAGS.model_base_path and not _found(FLAGS.model_base_path, "--model_base_path", io_utils.isdir):
        raise ConfigError(f"--model_base_path: {FLAGS.model_base_path} does not exist or is not a directory")
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        path = getattr(FLAGS, flag)
        if path and not _found(path, f"--{flag}", io_utils.isfile):
            raise ConfigError(f"--{flag}: {path} does not exist")
    for flag in ("port", "rest_api_port"):
        if not 0 <= getattr(FLAGS, flag) <= 65535:
            raise ConfigError(f"--{flag}: {getattr(FLAGS, flag)} is not a port number (0-65535)")
    if FLAGS.batching_engine != "python" and not (FLAGS.enable_batching or FLAGS.batching_parameters_file):
        raise ConfigError(f"--batching_engine={FLAGS.batching_engine}: needs --enable_batching (or "
                          "--batching_parameters_file); without them no request is batched")


def serving_line(server) -> str:
    """The one line printed once serving: models, versions and addresses."""
    models = ", ".join(f"{name} versions {server.manager.available_versions(name)}"
                       for name in server.manager.model_names())
    host = server.options.host
    rest = f", REST {host}:{server.rest_port}" if server.rest_port else ""
    return f"serving {models} on gRPC {host}:{server.grpc_port}{rest}"


def main(argv) -> int:
    """Runs the chosen backend until SIGTERM/SIGINT."""
    for flag in ("model_base_path", "model_config_file", "batching_parameters_file", "monitoring_config_file"):
        io_utils.check_path(getattr(FLAGS, flag) or "", f"--{flag}")
    check_flags()
    binary = None if FLAGS.backend == "embedded" else find_tf_serving()
    if FLAGS.backend == "tf_serving" and binary is None:
        raise ConfigError(f"--backend=tf_serving: {TF_SERVING_BINARY} not found (set {TF_SERVING_ENV} or put it "
                          "on PATH), or use --backend=embedded")
    if binary is not None:
        args = tf_serving_argv(binary)
        if FLAGS["batching_engine"].present:
            print("llm_serve: --batching_engine is the embedded server's; tensorflow_model_server batches with "
                  "TensorFlow's C++ batch scheduler", file=sys.stderr, flush=True)
        print(f"llm_serve: exec {' '.join(args)}", file=sys.stderr, flush=True)
        os.execve(binary, args, tf_serving_env())
    from llm_tf.bin import startup
    from llm_tf.serving.server import EmbeddedServer

    startup.log_start()
    server = EmbeddedServer(options_from_flags())
    server.start()
    print(serving_line(server), flush=True)
    server.wait()
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, flag_groups=FLAG_GROUPS)


if __name__ == "__main__":
    run()
