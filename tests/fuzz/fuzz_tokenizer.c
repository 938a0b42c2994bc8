/* fuzz_tokenizer: the WordPiece tokenizer (host/tokenizer.c: tok_encode, tok_words) on arbitrary
 * bytes, with the bert-base-uncased vocabulary (tests/fixtures/vocab/, relative to the working
 * directory, which scripts/fuzz.sh and ctest set to the repository root; SPLADEX_FUZZ_VOCAB
 * overrides it).
 * Input: byte 0 picks max_length (high bit set: no truncation, else 2 + (byte & 63)), the rest is
 * the text. Checked: [CLS] first and [SEP] last, every id in the vocabulary, at most max_length
 * ids, and truncation equal to the untruncated encoding cut to max_length - 1 ids plus [SEP]
 * (HF's right truncation); tok_words' output NUL-terminated at words_len
 * (fuzz_tokenizer_check.h). */
#include <stdint.h>
#include <stddef.h>

#include "fuzz_common.h"
#include "fuzz_tokenizer_check.h"
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
  tok_buffer full = {0};
  fuzz_tokenizer_check(t, (const char *)data + 1, size - 1, max_length, &full);
  tok_buffer_free(&full);
  return 0;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_tokenizer(data, size);
  return 0;
}
#endif
