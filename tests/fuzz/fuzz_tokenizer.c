/* fuzz_tokenizer: the WordPiece tokenizer (host/tokenizer.c: tok_encode, tok_words) on arbitrary
 * bytes, with the bert-base-uncased vocabulary (tests/fixtures/vocab/, relative to the working
 * directory, which scripts/fuzz.sh and ctest set to the repository root; SPLADEX_FUZZ_VOCAB
 * overrides it).
 * Input: byte 0 picks max_length (high bit set: no truncation, else 2 + (byte & 63)), the rest is
 * the text. Checked: [CLS] first and [SEP] last, every id in the vocabulary, at most max_length
 * ids, and truncation equal to the untruncated encoding cut to max_length - 1 ids plus [SEP]
 * (HF's right truncation); tok_words' output NUL-terminated at words_len. */
#include <stdint.h>
#include <stddef.h>

#include "fuzz_common.h"
#include "tokenizer.h"

static tok *fuzz_tokenizer_vocab(void) {
  static tok *t;
  if (t) return t;
  const char *path = getenv("SPLADEX_FUZZ_VOCAB");
  if (!path || !path[0]) path = "tests/fixtures/vocab/bert-base-uncased-vocab.txt";
  if (tok_open_file(path, &t) != 0) {
    fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root or set SPLADEX_FUZZ_VOCAB)\n", err_msg());
    abort();
  }
  return t;
}

static int fuzz_tokenizer(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  tok *t = fuzz_tokenizer_vocab();
  int max_length = (data[0] & 0x80) ? 0 : 2 + (data[0] & 63);
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
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
  int32_t first = full.ids[1];
  rc = tok_encode(t, text, len, 0, &full);
  FUZZ_REQUIRE(rc == 0 && full.n == n && full.ids[1] == first);
  const char *words = NULL;
  size_t words_len = 0;
  rc = tok_words(t, text, len, &cut, &words, &words_len);
  FUZZ_REQUIRE(rc == 0 && words && words[words_len] == '\0');
  tok_buffer_free(&full);
  tok_buffer_free(&cut);
  return 0;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_tokenizer(data, size);
  return 0;
}
#endif
