#!/usr/bin/env bash
# run.sh: the engines' stage of scripts/test.sh: sets up $SPLADEX_ENGINES_DIR (default
# build/engines: setup.sh), then runs run_engines.py in a fresh DIR/work against the spladex
# binary and the real splade-tiny.
# usage: tests/engines/run.sh [SPLADEX_BIN] [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-build/spladex}
model=${2:-models/splade-tiny}
dir=${SPLADEX_ENGINES_DIR:-build/engines}
py=$(tests/engines/setup.sh "$dir")
rm -rf "$dir/work"
exec "$py" tests/engines/run_engines.py --bin "$bin" --model "$model" \
  --jar "$dir/anserini-fatjar.jar" --work "$dir/work"
