#!/usr/bin/env bash
# The README's main job: prepare the SST-2 sentiment data set with llm_prepare (TFRecords,
# WordPiece vocabulary, statistics, schema). Runs on the project's own sample data unless
# --data_dir points at a directory holding train.tsv and dev.tsv (e.g. ../shared/data/sst2).
# Usage: bash scripts/main.sh [--data_dir=DIR] [--output_dir=DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="$ROOT/samples/sst2_sample"
OUTPUT_DIR="$ROOT/runs/sst2/prepared"
for arg in "$@"; do
  case "$arg" in
    --data_dir=*) DATA_DIR="${arg#*=}" ;;
    --output_dir=*) OUTPUT_DIR="${arg#*=}" ;;
    -h|--help) sed -n '2,6p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "main.sh: unknown argument '$arg' (expected --data_dir=DIR or --output_dir=DIR)" >&2; exit 2 ;;
  esac
done
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
case "$OUTPUT_DIR" in /*) ;; *) OUTPUT_DIR="$PWD/$OUTPUT_DIR" ;; esac
source "$ROOT/scripts/_venv.sh"
llm_prepare \
  --input="$DATA_DIR/train.tsv" \
  --eval_input="$DATA_DIR/dev.tsv" \
  --text_field=sentence --label_field=label \
  --vocab_size=8000 --max_seq_length=128 \
  --output_dir="$OUTPUT_DIR" --overwrite
echo "statistics: $OUTPUT_DIR/statistics.json, schema: $OUTPUT_DIR/schema.json, tokenizer: $OUTPUT_DIR/tokenizer/"
