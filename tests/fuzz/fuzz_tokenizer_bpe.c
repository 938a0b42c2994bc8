/* fuzz_tokenizer_bpe: RoBERTa's byte-level BPE (host/tokenizer.c: tok_open_file's BPE loader,
 * tok_encode, tok_words) on arbitrary bytes. Two modes, by the input's first byte:
 *   '{'    the whole input is a tokenizer.json (vocab, merges, added tokens, post-processor):
 *          it loads, or fails with a message; a loaded one encodes a few fixed texts.
 *   other  byte 0 picks max_length (high bit set: no truncation, else 2 + (byte & 63)), the rest
 *          is the text, encoded with tests/fixtures/tokenizer/bpe/tokenizer.json (1,000 tokens
 *          and ~740 merges trained by scripts/gen_tokenizer_bpe.py; relative to the working
 *          directory, which scripts/fuzz.sh and ctest set to the repository root;
 *          SPLADEX_FUZZ_BPE overrides it).
 * The loader refuses add_prefix_space (and every other pre-tokenizer setting), so max_length is
 * the one encoding option. Checked: <s> first and </s> last, every id in the vocabulary, at most
 * max_length ids, truncation equal to the untruncated encoding cut to max_length - 1 ids plus
 * </s> (HF's right truncation), a reused buffer giving the same ids, and tok_words' output
 * NUL-terminated at words_len. One buffer lives across inputs (and across the tokenizers of the
 * loader mode), so its word cache fills, is emptied and meets other toks: its ids must equal a
 * fresh buffer's. */
#include <stdint.h>
#include <stddef.h>

#include "fuzz_common.h"
#include "tokenizer.h"

static tok *fuzz_bpe_tokenizer(void) {
  static tok *t;
  if (t) return t;
  const char *path = getenv("SPLADEX_FUZZ_BPE");
  if (!path || !path[0]) path = "tests/fixtures/tokenizer/bpe/tokenizer.json";
  if (tok_open_file(path, &t) != 0) {
    fprintf(stderr, "fuzz_tokenizer_bpe: %s (run from the repository root or set SPLADEX_FUZZ_BPE)\n", err_msg());
    abort();
  }
  return t;
}

/* Encodes text with t, untruncated and at max_length (0: only untruncated), checking the
 * invariants above. */
static void fuzz_bpe_check(const tok *t, const char *text, size_t len, int max_length) {
  tok_buffer full = {0}, cut = {0};
  int rc = tok_encode(t, text, len, 0, &full);
  FUZZ_REQUIRE(rc == 0);
  FUZZ_REQUIRE(full.n >= 2 && full.ids[0] == tok_cls_id(t) && full.ids[full.n - 1] == tok_sep_id(t));
  for (size_t i = 0; i < full.n; i++) FUZZ_REQUIRE(full.ids[i] >= 0 && full.ids[i] < tok_vocab_size(t));
  if (max_length) {
    rc = tok_encode(t, text, len, max_length, &cut);
    FUZZ_REQUIRE(rc == 0);
    if (full.n <= (size_t)max_length) {
      FUZZ_REQUIRE(cut.n == full.n && memcmp(cut.ids, full.ids, full.n * sizeof *full.ids) == 0);
    } else {
      FUZZ_REQUIRE(cut.n == (size_t)max_length);
      FUZZ_REQUIRE(memcmp(cut.ids, full.ids, (cut.n - 1) * sizeof *cut.ids) == 0);
      FUZZ_REQUIRE(cut.ids[cut.n - 1] == tok_sep_id(t));
    }
  }
  /* A reused buffer gives the same ids. */
  size_t n = full.n;
  int32_t *first = malloc(n * sizeof *first);
  FUZZ_REQUIRE(first);
  memcpy(first, full.ids, n * sizeof *first);
  rc = tok_encode(t, text, len, 0, &full);
  FUZZ_REQUIRE(rc == 0 && full.n == n && memcmp(full.ids, first, n * sizeof *first) == 0);
  static tok_buffer warm; /* never freed: reachable, so no leak report */
  rc = tok_encode(t, text, len, 0, &warm);
  FUZZ_REQUIRE(rc == 0 && warm.n == n && memcmp(warm.ids, first, n * sizeof *first) == 0);
  free(first);
  const char *words = NULL;
  size_t words_len = 0;
  rc = tok_words(t, text, len, &cut, &words, &words_len);
  FUZZ_REQUIRE(rc == 0 && words && words[words_len] == '\0');
  tok_buffer_free(&full);
  tok_buffer_free(&cut);
}

static int fuzz_tokenizer_bpe(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] == '{') {
    static const char *const texts[] = {
        "Hello world, it's 3.14 <mask> and <s>x</s>  ",
        "  \t\n \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87 e\xcc\x81 \xff\xc3 'll've 12345 !!",
        "",
    };
    tok *t = NULL;
    int rc = tok_open_file(fuzz_write("input", data, size), &t);
    FUZZ_REQUIRE_MESSAGE(rc);
    FUZZ_REQUIRE((rc == 0) == (t != NULL));
    if (!t) return rc; /* refused: a NAME.expect of test_fuzz_regressions can check the message */
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) fuzz_bpe_check(t, texts[i], strlen(texts[i]), 5);
    tok_free(t);
    return 0;
  }
  tok *t = fuzz_bpe_tokenizer();
  int max_length = (data[0] & 0x80) ? 0 : 2 + (data[0] & 63);
  fuzz_bpe_check(t, (const char *)data + 1, size - 1, max_length);
  return 0;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_tokenizer_bpe(data, size);
  return 0;
}
#endif
