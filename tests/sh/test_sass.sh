#!/usr/bin/env bash
# test_sass: the CUDA backend compiles to what the design claims. scripts/sass_check.py reads the
# SASS and resource usage of every kernel in libspladex_cuda.so, for every architecture CMake built
# (SPLADEX_CUDA_ARCHS: sm_80 and sm_90a), and fails on a kernel that spills or uses local memory, on
# a claim of scripts/sass_claims.txt that does not hold (e.g. the fused decoder without HMMA) or
# matches no kernel, and on an architecture of the build with no SASS. It prints one line per
# kernel: arch, registers, stack and local bytes, tensor-core instructions. No GPU needed.
# A build without the CUDA backend: skipped (exit 77, "Not Run"). A CUDA build without cuobjdump
# (scripts/install_deps.sh installs it into .venv from scripts/requirements-test.txt): a failure.
set -uo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
BUILD=${SPLADEX_BUILD_DIR:-build}
[ -f "$BUILD/CMakeCache.txt" ] || fail "SPLADEX_BUILD_DIR ($BUILD) is not a CMake build directory"
lib=$BUILD/libspladex_cuda.so
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }

# SPLADEX_HAVE_CUDA: from ctest (CMakeLists.txt); by hand, whether the module is there.
case ${SPLADEX_HAVE_CUDA:-$([ -f "$lib" ] && echo ON || echo OFF)} in
  ON) [ -f "$lib" ] || fail "$BUILD is configured with the CUDA backend but has no $lib: build it" ;;
  *) echo "SKIP: $BUILD has no CUDA backend (SPLADEX_CUDA=OFF, or no nvcc): no SASS to check"
     exit 77 ;;
esac
python3 scripts/sass_check.py --archs "$(cache SPLADEX_CUDA_ARCHS)" "$lib"
case $? in
  0) ;;
  2) fail "no cuobjdump to read $lib (see above); a CUDA build must be checked, not skipped" ;;
  *) fail "the SASS of $lib does not hold what scripts/sass_claims.txt claims (see above)" ;;
esac
