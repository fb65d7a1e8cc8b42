"""What every binary shares: full --help, log hygiene, one-line errors."""

import functools
import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from absl import app, flags

from llm_tf import bin as _bin
from llm_tf.bin import logfilter
from llm_tf.errors import LlmTfError

FLAGS = flags.FLAGS

#: Closes every binary's --help: the flags all absl binaries take.
HELP_FOOTER = """
Every binary also takes absl's flags, among them:
  --flagfile: read flags from a file, one a line.
  --verbosity (-v): Python logging: -2 errors, -1 warnings, 0 info (the default;
    shows the start line), 1 debug (adds TensorFlow/Keras INFO records and
    TensorFlow's C++ INFO lines).
  --helpfull: every flag, TensorFlow's and absl's included.
Known-harmless TensorFlow/TFLite log lines are filtered out of stderr;
LLM_TF_LOG_NOISE=1 shows them (docs/binaries.md).
"""


def render_help(module, flag_groups: Mapping[str, Sequence[str]] | None = None) -> str:
    """The binary's --help: its docstring (description, example), then its own flags by group.

    Args:
        module: The binary's module (its docstring and the flags it defines).
        flag_groups: Group title -> flag names, in the order printed; flags of the module in
            no group are listed last under "other".

    Returns:
        The help text.

    Raises:
        ValueError: A group names a flag the module does not define.
    """
    program = os.path.basename(sys.argv[0]) or "llm_tf"
    doc = (module.__doc__ or f"USAGE: {program} [flags]").strip("\n")
    module_name = module.__name__  # "__main__" maps to sys.argv[0], where absl filed the flags
    own = {flag.name: flag for flag in FLAGS.get_flags_for_module(module_name)}
    groups = {title: list(names) for title, names in (flag_groups or {}).items()}
    unknown = sorted({name for names in groups.values() for name in names} - set(own))
    if unknown:
        raise ValueError(f"{module_name}: flag groups name undefined flags: {', '.join(unknown)}")
    grouped = {name for names in groups.values() for name in names}
    rest = [name for name in own if name not in grouped]
    if rest:
        groups["other" if groups else f"{program} flags"] = rest
    sections = []
    for title, names in groups.items():
        for name in names:
            # Each group is rendered by absl as a "module" of key flags: its layout, types, defaults.
            FLAGS.register_key_flag_for_module(title, own[name])
        sections.append(FLAGS.module_help(title))
    body = "\n".join(sections)  # each starts with "\n<title>:"
    return f"{doc}\n\nflags:\n{body}\n{HELP_FOOTER}"


#: What --help prints (set by install_help).
_help_text: Callable[[], str] = str


class _HelpFlag(app.HelpFlag):
    """--help / -? : the binary's full help on stdout, exit 0 (absl's short help exits 1)."""

    def parse(self, arg):
        if flags.BooleanParser().parse(arg):
            try:
                sys.stdout.write(_help_text())
                sys.stdout.flush()
            except BrokenPipeError:  # llm_train --help | head
                pass
            sys.exit(0)


class _HelpshortFlag(_HelpFlag):
    """--helpshort: an alias of --help, as in absl."""

    NAME = "helpshort"
    SHORT_NAME = None


class _HelpfullFlag(app.HelpfullFlag):
    """--helpfull: absl's listing of every flag, exit 0."""

    def parse(self, arg):
        if flags.BooleanParser().parse(arg):
            app.usage(writeto_stdout=True)
            sys.exit(0)


def install_help(module, flag_groups: Mapping[str, Sequence[str]] | None = None) -> None:
    """Makes --help/-?/--helpshort print :func:`render_help` and --helpfull exit 0.

    absl's --help lists the key flags of ``sys.argv[0]``, which for a console script is the
    generated wrapper (no flags): it printed only "Try --helpfull". absl's help flags are
    defined (``app.define_help_flags``, idempotent) and replaced by subclasses here.
    """
    app.define_help_flags()
    if not isinstance(FLAGS["help"], _HelpFlag):
        for name in ("help", "?", "helpshort", "helpfull"):
            if name in FLAGS:
                delattr(FLAGS, name)
        for flag in (_HelpFlag(), _HelpshortFlag(), _HelpfullFlag()):
            flags.DEFINE_flag(flag, FLAGS, module_name=app.__name__)
    global _help_text
    _help_text = functools.partial(render_help, module, flag_groups)
    # --helpfull prints __main__'s docstring first; a console script's __main__ is a wrapper without one.
    main_module = sys.modules.get("__main__")
    if main_module is not None and main_module is not module and not main_module.__doc__:
        main_module.__doc__ = module.__doc__


def quiet_logs() -> None:
    """After flag parsing: TensorFlow's C++ log level from --verbosity, then the fd-2 noise filter.

    Unless the user set ``TF_CPP_MIN_LOG_LEVEL``, it follows --verbosity: 1 (debug) or more
    shows C++ INFO (0), the default 0 and -1 show warnings and errors (1), -2 errors (2),
    -3 fatal only (3). TensorFlow reads it when it loads, which binaries do in main.
    ``LLM_TF_LOG_NOISE=1`` changes nothing and installs no filter.
    """
    if logfilter.noise_enabled():
        return  # LLM_TF_LOG_NOISE=1: TensorFlow's own defaults, nothing filtered
    if not _bin.USER_TF_CPP_MIN_LOG_LEVEL:
        verbosity = FLAGS["verbosity"].value
        level = 0 if verbosity >= 1 else 1 if verbosity >= -1 else 2 if verbosity == -2 else 3
        os.environ[_bin.TF_CPP_ENV] = str(level)
    level = os.environ.get(_bin.TF_CPP_ENV, "")
    logfilter.install(drop_cpp_info=not level.strip().startswith("0"))


def run_main(main: Callable[[list[str]], int | None], *, allow_args: bool = False,
             flag_groups: Mapping[str, Sequence[str]] | None = None) -> None:
    """Runs ``main`` under ``absl.app.run``; an :class:`LlmTfError` becomes one line and exit 1.

    ``--help`` prints the binary module's docstring and its own flags, grouped by
    ``flag_groups``; ``--flagfile`` and ``--helpfull`` work as in every absl binary. Before
    ``main``, known-harmless C++ log noise is filtered out of stderr (:mod:`llm_tf.bin.logfilter`).
    Ctrl-C exits 130.

    Args:
        main: The binary's main, taking argv and returning an exit code or None.
        allow_args: Pass positional arguments to ``main`` (``argv[1:]``); by default they are
            an error (exit 2).
        flag_groups: Group title -> the binary's flag names, for --help.
    """
    program = os.path.basename(sys.argv[0]) or "llm_tf"
    install_help(sys.modules[main.__module__], flag_groups)

    def guarded(argv: list[str]) -> int | None:
        if argv[1:] and not allow_args:
            print(f"{program}: error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
            return 2
        quiet_logs()
        try:
            return main(argv)
        except LlmTfError as e:
            print(f"{program}: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{program}: interrupted", file=sys.stderr)
            return 130
        finally:
            # The interpreter's exit-time garbage collection walks every object TensorFlow and
            # Keras left (1.2-1.3 s after an SST-2 training run; 0.15 s frozen). Exit handlers,
            # file closes and reference-counted clean-up still run; only cycles stay for the OS.
            gc.freeze()

    app.run(guarded)
