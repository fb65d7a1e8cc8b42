#!/usr/bin/env bash
# The README's test command: installs llm-tf with its test extras into .venv and runs pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/data -x`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" dev
exec python -m pytest "$@"
