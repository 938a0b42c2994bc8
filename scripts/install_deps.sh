#!/usr/bin/env bash
# Installs what building and testing spladex needs, only what is missing:
# Debian packages (compiler, CMake, HDF5, OpenBLAS, utf8proc, cJSON, zlib, WordNet for the demo;
# slurm-wlm and munge for tests/sh/test_slurm.sh, which starts its own throwaway cluster)
# and a Python virtual environment .venv with the pinned test requirements.
# Idempotent; safe to run before every build. The CUDA toolkit is not installed here: CMake
# builds the CUDA backend when /usr/local/cuda/bin/nvcc (or nvcc on PATH) exists.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(build-essential cmake pkg-config libhdf5-dev libopenblas-dev libutf8proc-dev
              libcjson-dev zlib1g-dev wordnet-base slurm-wlm munge)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install_deps: apt-get install ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "install_deps: creating .venv with $($py --version)" >&2
  $py -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# Reinstall only when the requirements changed since the last successful install.
stamp=.venv/.requirements-test.sha256
want=$(sha256sum scripts/requirements-test.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "install_deps: pip install -r scripts/requirements-test.txt" >&2
  .venv/bin/python -m pip install -q -r scripts/requirements-test.txt
  echo "$want" > "$stamp"
fi
