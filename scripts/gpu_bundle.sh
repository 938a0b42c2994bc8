#!/usr/bin/env bash
# gpu_bundle.sh: prepares scripts/gpu_check.sh for a GPU machine whose image has CUDA 13, cmake
# and python3 with torch/transformers/numpy/h5py, but not spladex's C libraries (HDF5, OpenBLAS,
# utf8proc, cJSON and what they pull in), and cannot install them (no network). Run it HERE, on a
# machine with the CUDA toolkit and the build dependencies (scripts/install_deps.sh):
#   1. builds spladex for sm_90a (Release) in build-gpu/, with an RPATH of $ORIGIN and
#      $ORIGIN/syslibs written as DT_RPATH (--disable-new-dtags), which, unlike RUNPATH, also
#      serves the libraries' own dependencies (libhdf5 -> libsz, libcurl, ...);
#   2. copies into build-gpu/syslibs every shared library that ldd resolves for the binaries,
#      except glibc's own, libstdc++/libgcc_s (the GPU image has newer ones) and CUDA's (the GPU
#      image brings its own CUDA 13 runtime, cuBLAS and cuSPARSE);
#   3. packs build-gpu (binaries and syslibs, no object files) into gpu-bundle.tar.xz, which is
#      what travels to the GPU machine (the device tool's `carry`, 64 MiB at most);
#   4. unpacks it in a scratch directory and checks with ldd that every binary finds each of its
#      libraries there (all but glibc's, libstdc++/libgcc_s and CUDA's).
# scripts/gpu_check.sh unpacks gpu-bundle.tar.xz when it is there and its spladex starts; else it
# builds in place (which needs the libraries on that machine).
# Usage: scripts/gpu_bundle.sh [ARCHS]   (default 90a: sm_90a, which the wgmma decoder needs)
set -euo pipefail
cd "$(dirname "$0")/.."
archs=${1:-90a}
build=build-gpu
rm -rf "$build" gpu-bundle.tar.xz
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPLADEX_CUDA_ARCHS="$archs" \
  -DCMAKE_BUILD_RPATH='$ORIGIN;$ORIGIN/syslibs' \
  -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags \
  -DCMAKE_SHARED_LINKER_FLAGS=-Wl,--disable-new-dtags >/dev/null
cmake --build "$build" -j"$(nproc)"
grep -q SPLADEX_HAVE_CUDA "$build/CMakeFiles/spladex_core.dir/flags.make" ||
  { echo "gpu_bundle: the build has no CUDA backend (nvcc not found?)" >&2; exit 1; }

mkdir -p "$build/syslibs"
skip='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libresolv|libutil|libstdc\+\+|libgcc_s|libcudart|libcublas|libcublasLt|libcusparse|libnvJitLink|libspladex_core|libspladex_cuda)\.so'
bins=$(find "$build" -maxdepth 1 -type f \( -name 'spladex' -o -name 'test_*' -o -name 'bench_*' -o -name '*.so' \) -perm -u+x)
for b in $bins; do
  ldd "$b" | awk '$3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  if [[ ! $name =~ $skip ]]; then cp -L "$path" "$build/syslibs/$name"; fi
done
echo "gpu_bundle: $(ls "$build/syslibs" | wc -l) libraries in $build/syslibs ($(du -sh "$build/syslibs" | cut -f1))"
# What gpu_check.sh needs of the build tree: the binaries and syslibs (not the object files,
# CMake's cache or ctest files, whose absolute paths are this machine's).
# shellcheck disable=SC2086
tar -cJf gpu-bundle.tar.xz $bins "$build/syslibs"

# The bundle must stand on its own: unpacked elsewhere, every library of every binary resolves,
# and each one that is not the system's or CUDA's (skip, above) from the unpacked copy.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tar -xJf gpu-bundle.tar.xz -C "$scratch"
bad=0
for b in $bins; do
  while read -r name path; do
    if [ "$path" = "not" ]; then
      echo "gpu_bundle: $b: $name not found" >&2; bad=1
    elif [[ ! $name =~ $skip || $name == libspladex_* ]] && [[ $path != "$scratch"/* ]]; then
      echo "gpu_bundle: $b: $name resolves outside the bundle ($path)" >&2; bad=1
    fi
  done < <(ldd "$scratch/$b" | awk '$2 == "=>" {print $1, $3}')
done
((!bad)) || { echo "gpu_bundle: the unpacked bundle does not resolve its libraries" >&2; exit 1; }
echo "gpu_bundle: unpacked in $scratch, every binary resolves its libraries from the bundle"
echo "gpu_bundle: gpu-bundle.tar.xz $(du -h gpu-bundle.tar.xz | cut -f1); carry it with the device tool: run(carry=[\"gpu-bundle.tar.xz\", \"models/splade-tiny\"], command=\"scripts/gpu_check.sh\", timeout_s=540)"
