#!/usr/bin/env bash
# The README's test command: installs llm-tf with its test, serving, kfp and beam extras into .venv, lints the
# tree with ruff (ruff.toml), then runs pytest. Extra arguments go to pytest (e.g. `bash scripts/test.sh
# tests/data -x`); LINT=0 skips the lint step.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" dev,serving,kfp,beam
if [ "${LINT:-1}" != "0" ]; then
  ruff check --quiet . || { echo "ruff check failed: fix the findings above (or run 'ruff check --fix .')" >&2; exit 1; }
fi
exec python -m pytest "$@"
