#!/usr/bin/env bash
# test_install: `cmake --install` gives a relocatable tree. Installed to a temporary prefix, then
# moved elsewhere, the tree runs with no build tree and no LD_LIBRARY_PATH: bin/spladex finds
# lib/libspladex_core.so through its $ORIGIN-relative RUNPATH (no RUNPATH names the build tree or
# the first prefix), the CUDA module (in a CUDA build) lies beside the core library where
# host/cuda_module.c looks for it, and share/spladex/slurm/expand.sbatch finds bin/spladex.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
BUILD=$(cd "${SPLADEX_BUILD_DIR:-$(dirname "$BIN")}" && pwd)

cmake --install "$BUILD" --prefix "$TMP/first" >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log" >&2; fail "cmake --install failed"; }
mv "$TMP/first" "$TMP/moved"
P=$TMP/moved
for f in bin/spladex lib/libspladex_core.so share/spladex/slurm/expand.sbatch; do
  [ -f "$P/$f" ] || fail "the install has no $f"
done
libs=(bin/spladex lib/libspladex_core.so)
if [ -f "$BUILD/libspladex_cuda.so" ]; then
  [ -f "$P/lib/libspladex_cuda.so" ] || fail "a CUDA build's install has no lib/libspladex_cuda.so beside the core library"
  libs+=(lib/libspladex_cuda.so)
fi
for f in "${libs[@]}"; do
  runpath=$(readelf -d "$P/$f" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
  case $runpath in *'$ORIGIN'*) ;; *) fail "$f: RUNPATH '$runpath' is not \$ORIGIN-relative" ;; esac
  case $runpath in *"$BUILD"*|*"$TMP/first"*) fail "$f: RUNPATH '$runpath' names the build tree or the install prefix" ;; esac
  # (ldd's output in a variable: grep -q on a pipe may end ldd by SIGPIPE, failing the pipeline)
  libs_found=$(env -u LD_LIBRARY_PATH ldd "$P/$f")
  grep -q "not found" <<<"$libs_found" && { echo "$libs_found" >&2; fail "$f: a library is not found"; }
done
libs_found=$(env -u LD_LIBRARY_PATH ldd "$P/bin/spladex")
grep -q "libspladex_core.so => $P/bin/../lib/libspladex_core.so" <<<"$libs_found" || { echo "$libs_found" >&2; fail "bin/spladex does not load the moved tree's libspladex_core.so"; }
echo "ok: installed tree, moved, \$ORIGIN RUNPATHs"

python3 tests/sh/shards.py corpus "$TMP/c.tsv" 40 5
version=$(env -u LD_LIBRARY_PATH "$P/bin/spladex" --version)
[[ $version == "spladex "* ]] || fail "the moved binary does not run"
env -u LD_LIBRARY_PATH "$P/bin/spladex" expand --model "$MODEL" --input "$TMP/c.tsv" --output "$TMP/out" \
  --shard-size 16 --device cpu --threads 1 --quiet "${MODEL_FLAGS[@]}" || fail "expand from the moved tree failed"
"$BIN" expand --model "$MODEL" --input "$TMP/c.tsv" --output "$TMP/ref" --shard-size 16 --device cpu \
  --threads 1 --quiet "${MODEL_FLAGS[@]}" || fail "expand from the build tree failed"
python3 tests/sh/shards.py compare "$TMP/ref" "$TMP/out" "$TMP/c.tsv" || fail "the moved tree's shards differ"
if [ -f "$P/lib/libspladex_cuda.so" ]; then
  # the module must be found (a machine without a GPU then fails on the device, not the module)
  env -u LD_LIBRARY_PATH -u SPLADEX_CUDA_LIB "$P/bin/spladex" expand --model "$MODEL" --input "$TMP/c.tsv" \
    --output "$TMP/cuda" --shard-size 16 --device cuda --quiet "${MODEL_FLAGS[@]}" 2>"$TMP/err" \
    || ! grep -q "could not be loaded" "$TMP/err" || { cat "$TMP/err" >&2; fail "the moved tree does not find its CUDA module"; }
  echo "ok: the CUDA module beside libspladex_core.so is found"
fi
echo "ok: the moved tree runs"

# the installed sbatch script finds bin/spladex beside itself: no SPLADEX, no spladex on PATH
env -i PATH=/usr/bin:/bin HOME="$TMP" bash "$P/share/spladex/slurm/expand.sbatch" --verify "$TMP/out" \
  >"$TMP/verify" 2>&1 || { cat "$TMP/verify" >&2; fail "the installed expand.sbatch --verify failed"; }
grep -q "with $P/share/spladex/slurm/../../../bin/spladex" "$TMP/verify" || { cat "$TMP/verify" >&2; fail "the installed expand.sbatch did not use the installed binary"; }
grep -q "OK: 3 shards, 40 docs" "$TMP/verify" || { cat "$TMP/verify" >&2; fail "the installed expand.sbatch --verify did not verify"; }
echo "ok: the installed expand.sbatch finds the installed binary"
echo "test_install: all passed"
