# Sourced by the README's commands: create (or reuse) the virtualenv inside the checkout
# and install llm-tf into it. Usage: source scripts/_venv.sh [EXTRAS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3.11}"
if ! command -v "$PYTHON_BIN" >/dev/null 2>&1; then
  echo "llm-tf needs Python 3.11 ('$PYTHON_BIN' not found; set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating virtualenv in $VENV" >&2
  "$PYTHON_BIN" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
fi
EXTRAS="${1:-}"
SPEC="$ROOT"
[ -n "$EXTRAS" ] && SPEC="$ROOT[$EXTRAS]"
# Reinstall only when setup.py changed since the last install into this venv.
STAMP="$VENV/.llm_tf_installed${EXTRAS:+_$EXTRAS}"
if [ ! -f "$STAMP" ] || [ "$ROOT/setup.py" -nt "$STAMP" ]; then
  echo "Installing llm-tf${EXTRAS:+[$EXTRAS]} into $VENV (first time: several minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$SPEC"
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
