# lib.sh: sourced by the expand shell tests (tests/sh/test_*.sh); not a test by itself.
# Runs from the repo root; SPLADEX_BIN is the binary under test.
BIN=${SPLADEX_BIN:-build/spladex}
[ -x "$BIN" ] || { echo "SPLADEX_BIN ($BIN) is not an executable" >&2; exit 1; }
TMP=$(mktemp -d /tmp/spladex-shtest-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# The model the tests encode with: the real splade-tiny when it is there (scripts/test.sh fetches
# it), else a random tiny BERT made with numpy (scripts/make_random_model.py), whose weights are
# dense-ish, so its runs add --top-k 64 to keep the shards small. SPLADEX_TEST_RANDOM_MODEL=1
# forces the random model.
MODEL_FLAGS=()
if [ "${SPLADEX_TEST_RANDOM_MODEL:-0}" = 1 ]; then
  MODEL=$TMP/model
  python3 scripts/make_random_model.py tiny-bert "$MODEL" >/dev/null || { echo "cannot make a model" >&2; exit 1; }
  MODEL_FLAGS=(--top-k 64)
elif [ -n "${SPLADEX_MODEL_TINY:-}" ] && [ -f "$SPLADEX_MODEL_TINY/config.json" ]; then
  MODEL=$SPLADEX_MODEL_TINY
elif [ -f models/splade-tiny/config.json ]; then
  MODEL=models/splade-tiny
else
  MODEL=$TMP/model
  python3 scripts/make_random_model.py tiny-bert "$MODEL" >/dev/null || { echo "cannot make a model" >&2; exit 1; }
  MODEL_FLAGS=(--top-k 64)
fi

fail() { echo "FAIL: $*" >&2; exit 1; }
