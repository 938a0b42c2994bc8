#!/usr/bin/env bash
# test_cli: what the commands share (host/cli.h), seen from the command line:
#   model directory   one with an encoder both at its top level and under
#                     document_0_MLMTransformer/: tokenize and encode use the document encoder
#                     and ITS vocabulary (the same ids and vectors as that subdirectory alone)
#   vocabulary size   a vocabulary that does not match the model is refused when the model is
#                     opened, with one message, by expand as by encode (no shard written)
#   --device          expand, encode and export take the same values and refuse a bad one with
#                     the same message; encode takes auto (the CPU's vectors when no CUDA device)
# The model fixtures come from scripts/gen_model_fixtures.py (vocabulary 1000, 64 positions).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

VOCAB=tests/fixtures/tokenizer/vocab.txt   # bert-base-uncased, 30522 tokens
link_model() { # FIXTURE DIR
  mkdir -p "$2" && ln -s "$PWD/$1/config.json" "$PWD/$1/model.safetensors" "$2/" || fail "cannot link $1"
}

# both/: a BERT at the top whose vocabulary has "hello" at id 999; the DistilBERT under
# document_0_MLMTransformer/ with bert-base's first 1000 tokens ("hello" unknown there).
BOTH=$TMP/both DOC=$TMP/both/document_0_MLMTransformer
link_model tests/fixtures/models/bert-untied-st "$BOTH"
link_model tests/fixtures/models/distilbert-st "$DOC"
{ head -n 999 "$VOCAB"; echo hello; } > "$BOTH/vocab.txt"
head -n 1000 "$VOCAB" > "$DOC/vocab.txt"

ids=$(echo "hello world" | "$BIN" tokenize --model "$BOTH") || fail "tokenize --model both/"
want=$(echo "hello world" | "$BIN" tokenize --model "$DOC") || fail "tokenize --model document_0/"
[ "$ids" = "$want" ] && [ "$ids" = "101 100 100 102" ] ||
  fail "tokenize --model both/ gave '$ids', the document encoder's vocabulary gives '$want'"

got=$("$BIN" encode --model "$BOTH" --max-length 32 --json "hello world" "an ! b" 2>"$TMP/err") ||
  fail "encode --model both/: $(cat "$TMP/err")"
want=$("$BIN" encode --model "$DOC" --max-length 32 --json "hello world" "an ! b") || fail "encode document_0/"
[ "$got" = "$want" ] || fail "encode --model both/ differs from the document encoder alone"

# mismatch/: the 1000-token DistilBERT with bert-base's 30522-token vocabulary.
BAD=$TMP/mismatch
link_model tests/fixtures/models/distilbert-st "$BAD"
cp "$VOCAB" "$BAD/vocab.txt"
printf 'd1\thello world\nd2\tsparse retrieval\n' > "$TMP/in.tsv"
msg="$BAD: the vocabulary has 30522 tokens but the model 1000"
"$BIN" encode --model "$BAD" --max-length 32 "hello" >/dev/null 2>"$TMP/err"
rc=$?
[ $rc = 1 ] && [ "$(cat "$TMP/err")" = "spladex encode: $msg" ] || fail "encode, mismatch: rc $rc, $(cat "$TMP/err")"
"$BIN" expand --model "$BAD" --max-length 32 --input "$TMP/in.tsv" --output "$TMP/out" --quiet 2>"$TMP/err"
rc=$?
[ $rc = 1 ] && [ "$(cat "$TMP/err")" = "spladex expand: $msg" ] || fail "expand, mismatch: rc $rc, $(cat "$TMP/err")"
ls "$TMP/out"/shard-* >/dev/null 2>&1 && fail "expand, mismatch: a shard was written"

# --device: one set of values, one message.
"$BIN" expand --model "$DOC" --max-length 32 --input "$TMP/in.tsv" --output "$TMP/ok" --quiet --device cpu ||
  fail "expand --device cpu"
for device in gpu cuda: cuda:x cuda0 "" CPU; do
  want="--device '$device': expected auto, cpu, cuda or cuda:N"
  "$BIN" encode --model "$DOC" --device "$device" hello >/dev/null 2>"$TMP/e1"; r1=$?
  "$BIN" expand --model "$DOC" --input "$TMP/in.tsv" --output "$TMP/x" --device "$device" 2>"$TMP/e2"; r2=$?
  "$BIN" export ciff --input "$TMP/ok" --output "$TMP/x.ciff" --device "$device" 2>"$TMP/e3"; r3=$?
  [ "$r1$r2$r3" = 222 ] || fail "--device '$device': exit codes $r1 $r2 $r3"
  [ "$(cat "$TMP/e1")" = "spladex encode: $want" ] && [ "$(cat "$TMP/e2")" = "spladex expand: $want" ] &&
    [ "$(cat "$TMP/e3")" = "spladex export: $want" ] ||
    fail "--device '$device': $(cat "$TMP/e1" "$TMP/e2" "$TMP/e3")"
done
cpu=$("$BIN" encode --model "$DOC" --max-length 32 --json --device cpu "hello world") || fail "encode --device cpu"
auto=$("$BIN" encode --model "$DOC" --max-length 32 --json --device auto "hello world" 2>"$TMP/err") ||
  fail "encode --device auto: $(cat "$TMP/err")"
if ! "$BIN" encode --model "$DOC" --max-length 32 --device cuda hello >/dev/null 2>&1; then
  # no usable CUDA device: auto is the CPU
  [ "$auto" = "$cpu" ] || fail "encode --device auto without a CUDA device differs from --device cpu"
fi
"$BIN" export ciff --input "$TMP/ok" --output "$TMP/ok.ciff" --device auto 2>"$TMP/err" ||
  fail "export --device auto: $(cat "$TMP/err")"
echo "test_cli.sh: ok"
