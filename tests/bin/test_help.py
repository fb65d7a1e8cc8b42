"""Every console script's --help: its description, an example command and all of its own flags, by group."""

import ast
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def console_scripts() -> list[tuple[str, str]]:
    """(script, module) pairs of setup.py's CONSOLE_SCRIPTS."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "CONSOLE_SCRIPTS" for t in node.targets):
            entries = ast.literal_eval(node.value)
            return [(name, target.split(":")[0]) for name, target in (e.split("=") for e in entries)]
    raise AssertionError("no CONSOLE_SCRIPTS in setup.py")


def module_source(module: str) -> ast.Module:
    return ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))


def defined_flags(tree: ast.Module) -> list[tuple[str, str]]:
    """(flag name, DEFINE_* function) of every ``flags.DEFINE_*("name", ...)`` at module level."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("DEFINE_") and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.args[0].value, node.func.attr))
    return found


def flag_groups(tree: ast.Module) -> dict[str, list[str]]:
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign)
                                                                        else None)
        if getattr(target, "id", "") == "FLAG_GROUPS":
            return ast.literal_eval(node.value)
    return {}


def example_commands(tree: ast.Module, script: str) -> list[str]:
    """The docstring's command lines after "Example:"/"Examples:" that run the script."""
    doc = ast.get_docstring(tree, clean=False) or ""
    _, _, examples = doc.partition("Example")
    return [line.strip() for line in examples.splitlines() if line.strip().startswith(script + " ")
            or f"| {script} " in line]


SCRIPTS = console_scripts()


def test_every_binary_is_covered():
    assert len(SCRIPTS) == 10 and all(module.startswith("llm_tf.bin.") for _, module in SCRIPTS)


@pytest.mark.parametrize("script, module", SCRIPTS)
def test_flag_groups_hold_each_flag_exactly_once(script, module):
    tree = module_source(module)
    names = [name for name, _ in defined_flags(tree)]
    grouped = [name for names_ in flag_groups(tree).values() for name in names_]
    assert names and sorted(grouped) == sorted(names), f"{module}: FLAG_GROUPS must list each of its flags once"


@pytest.mark.parametrize("script, module", SCRIPTS)
def test_help_shows_description_example_and_every_own_flag(script, module):
    out = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    help_text = out.stdout
    tree = module_source(module)
    first_line = (ast.get_docstring(tree) or "").splitlines()[0]
    assert help_text.startswith(first_line) and first_line.startswith(f"{script}: ")
    examples = example_commands(tree, script)
    assert examples, f"{module}'s docstring has no example command"
    for example in examples:
        assert example in help_text
    for name, define in defined_flags(tree):
        shown = f"--[no]{name}:" if define in ("DEFINE_bool", "DEFINE_boolean") else f"--{name}:"
        assert shown in help_text, f"{script} --help lacks {shown}"
    for title in flag_groups(tree):
        assert f"\n{title}:\n" in help_text
    assert "Try --helpfull" not in help_text and "--verbosity" in help_text and "LLM_TF_LOG_NOISE" in help_text


def test_help_aliases_and_helpfull_exit_zero():
    train = str(BIN / "llm_train")
    full = subprocess.run([train, "--help"], capture_output=True, text=True, timeout=120).stdout
    for alias in ("-?", "--helpshort"):
        out = subprocess.run([train, alias], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout == full
    out = subprocess.run([train, "--helpfull"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert out.stdout.startswith("llm_train: ")  # the binary's docstring, not the console-script wrapper's
    assert "\nllm_tf.bin.train:\n" in out.stdout and "absl.logging:" in out.stdout


def test_help_works_for_python_dash_m_too():
    out = subprocess.run([sys.executable, "-m", "llm_tf.bin.export", "--help"], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0 and out.stdout.startswith("llm_export: ") and "--model_base_path:" in out.stdout


def test_bad_flag_groups_are_reported():
    from llm_tf.bin import common

    module = type(sys)("fake_binary")
    module.__doc__ = "fake: nothing."
    with pytest.raises(ValueError, match="undefined flags: nope"):
        common.render_help(module, {"group": ["nope"]})
