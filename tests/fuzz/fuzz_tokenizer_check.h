/* fuzz_tokenizer_check.h: the invariants of one tokenizer encoding, shared by the WordPiece and
 * the byte-level BPE harnesses (fuzz_tokenizer.c, fuzz_tokenizer_bpe.c). */
#ifndef SPLADEX_FUZZ_TOKENIZER_CHECK_H
#define SPLADEX_FUZZ_TOKENIZER_CHECK_H

#include "fuzz_common.h"
#include "tokenizer.h"

/* Encodes text[0, len) with t, untruncated and at max_length (0: untruncated only), and aborts
 * unless: the first id is tok_cls_id and the last tok_sep_id ([CLS]/[SEP], <s>/</s>), every id
 * is in the vocabulary, the truncated encoding is the untruncated one cut to max_length - 1 ids
 * plus the last id (HF's right truncation), encoding again into the same buffer gives the same
 * ids, and tok_words' output is NUL-terminated at words_len. Returns the untruncated ids in *out
 * (the caller frees out->ids with tok_buffer_free; out starts zeroed). */
static inline void fuzz_tokenizer_check(const tok *t, const char *text, size_t len, int max_length, tok_buffer *out) {
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
  rc = tok_encode(t, text, len, 0, &cut);
  FUZZ_REQUIRE(rc == 0 && cut.n == full.n);
  rc = tok_encode(t, text, len, 0, &full);
  FUZZ_REQUIRE(rc == 0 && full.n == cut.n && memcmp(full.ids, cut.ids, cut.n * sizeof *cut.ids) == 0);
  const char *words = NULL;
  size_t words_len = 0;
  rc = tok_words(t, text, len, &cut, &words, &words_len);
  FUZZ_REQUIRE(rc == 0 && words && words[words_len] == '\0');
  tok_buffer_free(&cut);
  *out = full;
}

#endif
