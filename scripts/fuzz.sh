#!/usr/bin/env bash
# fuzz.sh: builds one libFuzzer harness (tests/fuzz/fuzz_TARGET.c) with clang and
# -fsanitize=fuzzer,address,undefined into build-fuzz/, then fuzzes it for SECONDS at the lowest
# CPU priority. Usage: scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags...]
#   TARGET: safetensors | torchbin | config | shard | tokenizer | tokenizer_bpe | corpus | all (builds only)
# Seeds: tests/fuzz/corpus/TARGET (read-only); the growing corpus: build-fuzz/corpus/TARGET;
# crashes, leaks and timeouts: build-fuzz/artifacts/TARGET/; the log: build-fuzz/logs/TARGET.log.
# A crashing input is reproduced with build-fuzz/fuzz_TARGET FILE; once fixed, commit it under
# tests/fuzz/regressions/TARGET/ so tests/test_fuzz_regressions.c replays it in every ctest run.
# Installs clang and libclang-rt-14-dev (libFuzzer) with apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-}
seconds=${2:-}
if [ -z "$target" ] || [ -z "$seconds" ] && [ "$target" != all ]; then
  echo "usage: scripts/fuzz.sh safetensors|torchbin|config|shard|tokenizer|tokenizer_bpe|corpus|all SECONDS [libFuzzer flags]" >&2
  exit 2
fi
shift 2 || shift $#

# The sources each harness links (the module under test and what it calls), and -max_len.
declare -A sources max_len
sources[safetensors]="io/safetensors.c io/torchbin.c io/tensorfile.c host/err.c"
sources[torchbin]="io/safetensors.c io/torchbin.c io/tensorfile.c host/err.c"
sources[config]="host/model.c io/safetensors.c io/torchbin.c io/tensorfile.c io/sha256.c host/err.c"
sources[shard]="io/shard_reader.c io/shard_format.c cuda/cu_dtype.c host/err.c"
sources[tokenizer]="host/tokenizer.c io/utf8.c host/err.c"
sources[tokenizer_bpe]="host/tokenizer.c io/utf8.c host/err.c"
sources[corpus]="io/corpus.c io/utf8.c host/err.c"
max_len[safetensors]=65536
max_len[torchbin]=32768
max_len[config]=8192
max_len[shard]=65536
max_len[tokenizer]=4096
max_len[tokenizer_bpe]=8192 # text, or a tokenizer.json (the json-tiny seed is 4 KB)
max_len[corpus]=16384
# Extra libFuzzer flags per target. shard: libhdf5 1.10.8 (a system library) loops forever on
# some corrupted global heaps and reads out of bounds on some corrupted object headers
# (docs/RELIABILITY.md); fork mode with -ignore_* keeps fuzzing past such inputs, each still
# saved under build-fuzz/artifacts/shard/ (crash-*, timeout-*) for triage: a stack through
# io/shard_reader.c's own code, not ending inside libhdf5, is a spladex bug.
declare -A extra
extra[shard]="-fork=1 -ignore_timeouts=1 -ignore_crashes=1 -ignore_ooms=1 -timeout=10"

need=()
command -v clang >/dev/null || need+=(clang)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
if ((${#need[@]})); then
  echo "fuzz.sh: apt-get install ${need[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

cflags=(-std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
        -fno-sanitize-recover=undefined -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
        -Ihost -Iio -Icuda -Itests/fuzz -Wall -Wextra
        $(pkg-config --cflags hdf5 libcjson libutf8proc zlib))
libs=($(pkg-config --libs hdf5 libcjson libutf8proc zlib) -lm -lpthread)

build() {
  local t=$1
  [ -n "${sources[$t]:-}" ] || { echo "fuzz.sh: unknown target '$t'" >&2; exit 2; }
  mkdir -p build-fuzz
  # Harness and the spladex sources it exercises, all instrumented for coverage; the system
  # libraries (HDF5, cJSON, zlib, utf8proc) are not.
  clang "${cflags[@]}" -fsanitize=fuzzer -o "build-fuzz/fuzz_$t" "tests/fuzz/fuzz_$t.c" ${sources[$t]} "${libs[@]}"
  echo "fuzz.sh: built build-fuzz/fuzz_$t" >&2
}

if [ "$target" = all ]; then
  for t in safetensors torchbin config shard tokenizer tokenizer_bpe corpus; do build "$t"; done
  exit 0
fi
build "$target"

mkdir -p "build-fuzz/corpus/$target" "build-fuzz/artifacts/$target" build-fuzz/logs "tests/fuzz/corpus/$target"
log=build-fuzz/logs/$target.log
# The harnesses write their scratch files under $TMPDIR (in memory when /dev/shm exists); fork
# mode and crashing runs do not clean up after themselves, so the whole run gets one directory.
run_tmp=$(mktemp -d /dev/shm/spladex-fuzzrun-XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$run_tmp"' EXIT
export TMPDIR=$run_tmp
echo "fuzz.sh: fuzzing $target for $seconds s (log $log)" >&2
set +e
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  nice -n 19 "build-fuzz/fuzz_$target" -max_total_time="$seconds" -max_len="${max_len[$target]}" \
  -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 ${extra[$target]:-} \
  -artifact_prefix="build-fuzz/artifacts/$target/" "$@" \
  "build-fuzz/corpus/$target" "tests/fuzz/corpus/$target" >"$log" 2>&1
rc=$?
set -e
grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^Done|cov:" "$log" | tail -5 >&2 || true
found=$(find "build-fuzz/artifacts/$target" -type f | wc -l)
echo "fuzz.sh: $target: exit $rc, $found artifact(s) in build-fuzz/artifacts/$target" >&2
exit $rc
