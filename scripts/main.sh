#!/usr/bin/env bash
# The README's main job: the SST-2 sentiment pipeline end to end (llm_pipeline: data ->
# validation -> vocabulary -> training -> evaluation/blessing -> export -> TFLite variants ->
# infra validation -> push), then the embedded server on the pushed model and one gRPC request.
# Runs on the project's own sample data unless --data_dir points at a directory holding
# train.tsv and dev.tsv (e.g. ../shared/data/sst2).
# Usage: bash scripts/main.sh [--data_dir=DIR] [--output_dir=DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTPUT_DIR="$ROOT/runs/main"
PIPELINE_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --data_dir=*) PIPELINE_ARGS+=("--data_dir=$(cd "${arg#*=}" && pwd)") ;;
    --output_dir=*) OUTPUT_DIR="${arg#*=}" ;;
    -h|--help) sed -n '2,7p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "main.sh: unknown argument '$arg' (expected --data_dir=DIR or --output_dir=DIR)" >&2; exit 2 ;;
  esac
done
case "$OUTPUT_DIR" in /*) ;; *) OUTPUT_DIR="$PWD/$OUTPUT_DIR" ;; esac
source "$ROOT/scripts/_venv.sh" ""   # no extras (do not pass this script's arguments on)
BASE="$OUTPUT_DIR/serving/sst2"
llm_pipeline --pipeline="$ROOT/pipelines/sst2_sentiment.py" --pipeline_root="$OUTPUT_DIR/pipeline" \
  --serving_model_base_path="$BASE" ${PIPELINE_ARGS[@]+"${PIPELINE_ARGS[@]}"}
if ! ls "$BASE" 2>/dev/null | grep -q '^[0-9]\+$'; then
  echo "main.sh: no model version was pushed to $BASE (see the pipeline summary above)" >&2
  exit 1
fi
PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')"
llm_serve --backend=embedded --port="$PORT" --rest_api_port=0 --model_name=sst2 --model_base_path="$BASE" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true' EXIT
llm_predict --server="localhost:$PORT" --model=sst2 --wait_seconds=120 \
  "a gripping , funny and touching film" "the plot is thin and the acting is wooden"
echo "pushed versions: $(ls "$BASE" | grep '^[0-9]\+$' | tr '\n' ' ')under $BASE; lineage: llm_pipeline lineage --serving_model_base_path=$BASE --model_version=N"
