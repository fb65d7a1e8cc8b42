#!/usr/bin/env bash
# The README's main job: the distilled SST-2 pipeline end to end (llm_pipeline: data ->
# validation -> a teacher fine-tuned from all-MiniLM-L6-v2 -> evaluation -> transfer set ->
# teacher logits -> a small distilled student -> evaluation against the teacher -> TFLite
# variants -> infra validation -> push of the student), then the embedded server on the pushed
# student and a gRPC request with sentences that are not in the data.
# Runs on the project's own sample data unless --data_dir points at a directory holding
# train.tsv and dev.tsv (e.g. ../shared/data/sst2; an imdb/reviews.csv beside that directory
# joins the transfer set). --options=K=V,... adds pipeline options (pipelines/sst2_distilled.py).
# Usage: bash scripts/main.sh [--data_dir=DIR] [--output_dir=DIR] [--options=K=V,...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTPUT_DIR="$ROOT/runs/main"
DATA_DIR=""
OPTIONS=""
for arg in "$@"; do
  case "$arg" in
    --data_dir=*) DATA_DIR="$(cd "${arg#*=}" && pwd)" ;;
    --output_dir=*) OUTPUT_DIR="${arg#*=}" ;;
    --options=*) OPTIONS="${arg#*=}" ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "main.sh: unknown argument '$arg' (expected --data_dir=DIR, --output_dir=DIR or --options=K=V,...)" >&2
       exit 2 ;;
  esac
done
case "$OUTPUT_DIR" in /*) ;; *) OUTPUT_DIR="$PWD/$OUTPUT_DIR" ;; esac
PIPELINE_ARGS=()
if [ -n "$DATA_DIR" ]; then
  PIPELINE_ARGS+=("--data_dir=$DATA_DIR")
  IMDB="$(dirname "$DATA_DIR")/imdb/reviews.csv"
  if [ -f "$IMDB" ] && [[ ",$OPTIONS" != *",extra="* ]]; then   # IMDB sentences join the transfer set
    OPTIONS="${OPTIONS:+$OPTIONS,}extra=$IMDB"
  fi
fi
[ -n "$OPTIONS" ] && PIPELINE_ARGS+=("--options=$OPTIONS")
source "$ROOT/scripts/_venv.sh" serving   # the serving extra: llm_serve, llm_predict, infra validation
BASE="$OUTPUT_DIR/serving/sst2"
llm_pipeline --pipeline="$ROOT/pipelines/sst2_distilled.py" --pipeline_root="$OUTPUT_DIR/pipeline" \
  --serving_model_base_path="$BASE" ${PIPELINE_ARGS[@]+"${PIPELINE_ARGS[@]}"}
if ! ls "$BASE" 2>/dev/null | grep -q '^[0-9]\+$'; then
  echo "main.sh: no student version was pushed to $BASE (see the pipeline summary above: StudentEvaluator and Pusher say why)" >&2
  exit 1
fi
PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')"
llm_serve --backend=embedded --port="$PORT" --rest_api_port=0 --model_name=sst2 --model_base_path="$BASE" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true' EXIT
# Sentences that are not in the sample (nor in SST-2's train or dev files): label, probability, text.
llm_predict --server="localhost:$PORT" --model=sst2 --wait_seconds=120 \
  "an absolute masterpiece , brilliant from beginning to end" \
  "i adored this movie , the actors were fantastic" \
  "a heartwarming , hilarious adventure that kids and parents will love" \
  "a tedious , incoherent disaster that i regret watching" \
  "the worst movie i have seen , awful in every way" \
  "an incompetent , unbearable film that insults the audience"
echo "pushed student versions: $(ls "$BASE" | grep '^[0-9]\+$' | tr '\n' ' ')under $BASE; lineage: llm_pipeline lineage --serving_model_base_path=$BASE --model_version=N"
