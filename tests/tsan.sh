#!/usr/bin/env bash
# tsan.sh: the threads of the expand pipeline (reader, tokenizers, encoder, writer, the shard
# writer's compression threads, the publisher) and the CPU encoder's pool under ThreadSanitizer.
# Builds BUILD (default build-tsan; CPU only, -fsanitize=thread), then runs, each failing on any
# report (TSan's exit code 66):
#   bench_pipeline   the real pipeline with the synthetic encoder, 20,000 passages in 7 shards
#   spladex expand   the real CPU encoder on 400 of those passages, 2 threads, 2 shards
#   spladex encode   the same passages through `encode` (the pool without the pipeline)
# OpenBLAS, HDF5 and zlib are not instrumented; their own threads are not what this checks.
# Usage: tests/tsan.sh MODEL_DIR [BUILD]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tests/tsan.sh MODEL_DIR [BUILD]}
build=${2:-build-tsan}
jobs=$(nproc)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPLADEX_CUDA=OFF \
  -DCMAKE_C_FLAGS="-fsanitize=thread -g" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" >/dev/null
cmake --build "$build" -j"$jobs" --target spladex bench_pipeline >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1"
status=0
run() { # NAME COMMAND...: runs it, its output in $work/NAME.log; a report or failure fails the stage
  local name=$1
  shift
  if "$@" >"$work/$name.log" 2>&1; then
    echo "tsan: $name: no report"
  else
    echo "tsan: $name: FAILED (exit $?)" >&2
    grep -A30 "WARNING: ThreadSanitizer" "$work/$name.log" | head -80 >&2 || tail -20 "$work/$name.log" >&2
    status=1
  fi
}
run bench_pipeline "$build/bench_pipeline" --docs 20000 --shard-size 3000 --repeats 1 --model "$model" \
  --dir "$work/bench" --keep
head -400 "$work/bench/corpus-20000.tsv" >"$work/corpus.tsv"
run expand "$build/spladex" expand --model "$model" --input "$work/corpus.tsv" --output "$work/out" \
  --shard-size 200 --threads 2
cut -f2 "$work/corpus.tsv" >"$work/texts.txt"
run encode sh -c '"$0" encode --model "$1" --threads 2 --top 5 < "$2"' "$build/spladex" "$model" "$work/texts.txt"
exit $status
