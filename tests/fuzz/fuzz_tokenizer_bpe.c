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
 * NUL-terminated at words_len (fuzz_tokenizer_check.h). One buffer lives across inputs (and
 * across the tokenizers of the loader mode), so its word cache fills, is emptied and meets other
 * toks: its ids must equal a fresh buffer's. */
#include <stdint.h>
#include <stddef.h>

#include "fuzz_common.h"
#include "fuzz_tokenizer_check.h"
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

/* fuzz_tokenizer_check, and the same ids from a buffer kept across inputs. */
static void fuzz_bpe_check(const tok *t, const char *text, size_t len, int max_length) {
  tok_buffer full = {0};
  static tok_buffer warm; /* never freed: reachable, so no leak report */
  fuzz_tokenizer_check(t, text, len, max_length, &full);
  int rc = tok_encode(t, text, len, 0, &warm);
  FUZZ_REQUIRE(rc == 0 && warm.n == full.n && memcmp(warm.ids, full.ids, full.n * sizeof *full.ids) == 0);
  tok_buffer_free(&full);
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
