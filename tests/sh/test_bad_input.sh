#!/usr/bin/env bash
# test_bad_input: the documented behaviour of `spladex expand` on odd input lines (the README
# table; io/corpus.c's top comment):
#   no tab / empty line  error naming file:line (exit non-zero, no shard); --skip-bad-lines skips,
#                        counts and reports it
#   invalid UTF-8        text: passed to the tokenizer; id: stored with U+FFFD replacing it
#   NUL bytes            dropped by the tokenizer's clean-text step ("a\0b" encodes as "ab")
#   1 MB passage         read whole, truncated to --max-length tokens (= its first words)
#   CRLF endings         the same docs and vectors as LF
#   no final newline     the last line is a doc
#   empty passage        kept as a [CLS][SEP] row
#   duplicate ids        kept, counted and reported
#   gzip, BEIR JSONL     the same docs and vectors as the plain TSV with title + " " + text
set -uo pipefail
source "$(dirname "$0")/lib.sh"

run() { "$BIN" expand --model "$MODEL" --max-length 64 --shard-size 4 --threads 1 --quiet "${MODEL_FLAGS[@]}" "$@"; }

python3 - "$TMP" <<'PY'
import gzip, json, sys
d = sys.argv[1]
words = ("retrieval of sparse vectors with learned term weights is fast on inverted indexes "
         "and the model expands each passage with related terms ").split()
big = " ".join(words[i % len(words)] for i in range(180000))       # about 1 MB
assert len(big) > 1_000_000
rows = [
    (b"plain", b"sparse retrieval with learned weights"),
    (b"nul", b"spa\x00rse retrieval"),
    (b"nul-ref", b"sparse retrieval"),
    (b"bad\xffid", b"caf\xc3 au lait \xe2\x82 invalid bytes"),
    (b"empty", b""),
    (b"big", big.encode()),
    (b"big-ref", " ".join(big.split()[:300]).encode()),
    (b"plain", b"a duplicate id"),
    (b"last", b"no final newline"),
]
lf = b"".join(i + b"\t" + t + b"\n" for i, t in rows)[:-1]       # no final newline
open(f"{d}/lf.tsv", "wb").write(lf)
open(f"{d}/crlf.tsv", "wb").write(lf.replace(b"\n", b"\r\n"))
with gzip.open(f"{d}/lf.tsv.gz", "wb") as f:
    f.write(lf)
# BEIR JSONL (title + " " + text) against the TSV holding that joined text
beir = [("b1", "Sparse retrieval", "learned weights"), ("b2", "", "empty title"),
        ("b3", "Title only", "")]
with open(f"{d}/beir.jsonl", "w") as f:
    for i, ti, te in beir:
        f.write(json.dumps({"_id": i, "title": ti, "text": te, "metadata": {}}) + "\n")
with open(f"{d}/beir.tsv", "w") as f:
    for i, ti, te in beir:
        f.write(f"{i}\t{ti} {te}\n")
# malformed lines
open(f"{d}/notab.tsv", "wb").write(b"a\tfine\nb\tfine\nthis line has no tab\nc\tfine\n")
open(f"{d}/emptyline.tsv", "wb").write(b"a\tfine\n\nc\tfine\n")
PY

# no tab: error naming file:line, nothing written
run --input "$TMP/notab.tsv" --output "$TMP/notab" 2>"$TMP/err" && fail "a line with no tab was accepted"
grep -q "notab.tsv:3: no tab" "$TMP/err" || { cat "$TMP/err" >&2; fail "the error does not name notab.tsv:3"; }
! ls "$TMP/notab" | grep -q '^shard-' || fail "shards written despite the error"
# --skip-bad-lines: skipped, counted, reported; the other docs numbered without a gap
run --input "$TMP/notab.tsv" --output "$TMP/notab" --skip-bad-lines 2>"$TMP/err" || fail "--skip-bad-lines failed"
grep -q "1 malformed line(s) skipped (first: .*notab.tsv:3: no tab" "$TMP/err" || { cat "$TMP/err" >&2; fail "the skipped line is not reported"; }
[ "$(python3 tests/sh/shards.py ids "$TMP/notab" | tr '\n' ' ')" = "'a' 'b' 'c' " ] || fail "--skip-bad-lines docs"
run --input "$TMP/emptyline.tsv" --output "$TMP/emptyline" 2>"$TMP/err" && fail "an empty line was accepted"
grep -q "emptyline.tsv:2: empty line" "$TMP/err" || { cat "$TMP/err" >&2; fail "the empty line error does not name emptyline.tsv:2"; }
echo "ok: malformed lines"

# the LF file: every doc, in order, with the last line and the duplicate id reported
"$BIN" expand --model "$MODEL" --max-length 64 --shard-size 4 --threads 1 "${MODEL_FLAGS[@]}" \
  --input "$TMP/lf.tsv" --output "$TMP/lf" 2>"$TMP/err" || { cat "$TMP/err" >&2; fail "the LF corpus failed"; }
grep -q "1 duplicate id(s) in the input (first: 'plain' at line 8)" "$TMP/err" || { cat "$TMP/err" >&2; fail "duplicate not reported"; }
ids=$(python3 tests/sh/shards.py ids "$TMP/lf" | tr '\n' ' ')
[ "$ids" = "'plain' 'nul' 'nul-ref' 'bad\ufffdid' 'empty' 'big' 'big-ref' 'plain' 'last' " ] || fail "doc ids: $ids"
python3 tests/sh/shards.py same-row "$TMP/lf" nul nul-ref || fail "a NUL byte is not dropped"
python3 tests/sh/shards.py same-row "$TMP/lf" big big-ref || fail "the 1 MB passage is not its first words"
python3 - "$TMP/lf" <<'PY' || fail "the empty passage row"
import sys
sys.path.insert(0, "tests/sh")
import shards
r = dict(shards.rows(sys.argv[1]))
assert "empty" in r and len(r["empty"]) > 0, r.get("empty")  # [CLS][SEP] has terms
PY
echo "ok: invalid UTF-8, NUL, 1 MB passage, empty passage, duplicates, no final newline"

run --input "$TMP/crlf.tsv" --output "$TMP/crlf" || fail "the CRLF corpus failed"
python3 tests/sh/shards.py same-rows "$TMP/lf" "$TMP/crlf" || fail "CRLF differs from LF"
run --input "$TMP/lf.tsv.gz" --output "$TMP/gz" || fail "the gzip corpus failed"
python3 tests/sh/shards.py same-rows "$TMP/lf" "$TMP/gz" || fail "gzip differs from plain"
run --input "$TMP/beir.jsonl" --output "$TMP/beir" || fail "the BEIR JSONL corpus failed"
run --input "$TMP/beir.tsv" --output "$TMP/beirtsv" || fail "the BEIR TSV corpus failed"
python3 tests/sh/shards.py same-rows "$TMP/beir" "$TMP/beirtsv" || fail "BEIR JSONL differs from title + ' ' + text"
echo "ok: CRLF, gzip, BEIR JSONL"
echo "test_bad_input: all passed"
