/* test_utf8: io/utf8.h, the one UTF-8 decoder and encoder. Every code point round-trips at
 * the length boundaries of each form; overlong forms, surrogates, code points past U+10FFFF,
 * stray continuation bytes and truncated sequences are invalid and consumed one maximal subpart
 * at a time. The expected subpart lengths are Python's: each case's note gives
 * len(bytes.decode("utf-8", "replace")) worth of U+FFFD, which is what the tokenizer's HF parity
 * (tests/py/test_tokenizer_parity.py) and the corpus's doc ids (test_corpus) rely on. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "utf8.h"

/* Decodes all of s[0, n) and writes the lengths of its pieces, negative for an invalid subpart
 * ("a\xE2\x82z" -> 1 -2 1), into got; returns the number of pieces. */
static int pieces(const char *s, size_t n, int *got) {
  int k = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t len = utf8_decode(s + i, n - i, &cp);
    got[k++] = cp == UTF8_INVALID ? -(int)len : (int)len;
    i += len;
  }
  return k;
}

static void check_pieces(const char *s, size_t n, const int *want, int n_want) {
  int got[16];
  int k = pieces(s, n, got);
  int same = k == n_want;
  for (int i = 0; same && i < k; i++) same = got[i] == want[i];
  CHECK(same);
  if (!same) {
    fprintf(stderr, "  pieces of");
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %02X", (unsigned char)s[i]);
    fprintf(stderr, ":");
    for (int i = 0; i < k; i++) fprintf(stderr, " %d", got[i]);
    fprintf(stderr, "\n");
  }
}

#define PIECES(s, ...)                                                             \
  do {                                                                             \
    const int want_[] = {__VA_ARGS__};                                             \
    check_pieces(s, sizeof(s) - 1, want_, (int)(sizeof want_ / sizeof want_[0])); \
  } while (0)

/* Each length's first and last code point, and the neighbours of the surrogate block. */
static void test_boundaries(void) {
  static const struct {
    uint32_t cp;
    const char *bytes;
  } cases[] = {
      {0x0000, "\x00"},         {0x007F, "\x7F"},         {0x0080, "\xC2\x80"},
      {0x07FF, "\xDF\xBF"},     {0x0800, "\xE0\xA0\x80"}, {0xD7FF, "\xED\x9F\xBF"},
      {0xE000, "\xEE\x80\x80"}, {0xFFFD, "\xEF\xBF\xBD"}, {0xFFFF, "\xEF\xBF\xBF"},
      {0x10000, "\xF0\x90\x80\x80"}, {0x10FFFF, "\xF4\x8F\xBF\xBF"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = cases[i].cp == 0 ? 1 : strlen(cases[i].bytes);
    char out[UTF8_MAX_BYTES];
    CHECK(utf8_encode(cases[i].cp, out) == n && !memcmp(out, cases[i].bytes, n));
    uint32_t cp = 0;
    CHECK(utf8_decode(cases[i].bytes, n, &cp) == n && cp == cases[i].cp);
    CHECK(utf8_valid(cases[i].bytes, n));
  }
}

/* Every code point: encode then decode gives it back (surrogates excepted: invalid). */
static void test_round_trip(void) {
  int bad = 0;
  for (uint32_t c = 0; c <= 0x10FFFF; c++) {
    char out[UTF8_MAX_BYTES];
    size_t n = utf8_encode(c, out);
    size_t want = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    uint32_t back;
    size_t used = utf8_decode(out, n, &back);
    int surrogate = c >= 0xD800 && c <= 0xDFFF;
    if (n != want) bad++;
    else if (surrogate ? back != UTF8_INVALID || used != 1 || utf8_valid(out, n)
                       : back != c || used != n || !utf8_valid(out, n))
      bad++;
  }
  CHECK(bad == 0);
}

/* Invalid input, one maximal subpart at a time (the Unicode 15 section 3.9 examples and more);
 * the number of negative pieces is the number of U+FFFD Python writes. */
static void test_invalid(void) {
  PIECES("\x80", -1);                      /* stray continuation */
  PIECES("\xBF\x80", -1, -1);
  PIECES("\xC0\xAF", -1, -1);              /* overlong '/' : C0, C1 never start anything */
  PIECES("\xC1\xBF", -1, -1);
  PIECES("\xE0\x80\xAF", -1, -1, -1);      /* overlong 3-byte: E0 needs A0..BF next */
  PIECES("\xE0\x9F\xBF", -1, -1, -1);
  PIECES("\xF0\x80\x80\xAF", -1, -1, -1, -1); /* overlong 4-byte: F0 needs 90..BF next */
  PIECES("\xF0\x8F\xBF\xBF", -1, -1, -1, -1);
  PIECES("\xED\xA0\x80", -1, -1, -1);      /* surrogate U+D800: ED needs 80..9F next */
  PIECES("\xED\xBF\xBF", -1, -1, -1);      /* U+DFFF */
  PIECES("\xED\xA0\x80\xED\xB0\x80", -1, -1, -1, -1, -1, -1); /* a CESU-8 pair */
  PIECES("\xF4\x90\x80\x80", -1, -1, -1, -1); /* U+110000: F4 needs 80..8F next */
  PIECES("\xF5\x80\x80\x80", -1, -1, -1, -1); /* F5..FF never start anything */
  PIECES("\xFE", -1);
  PIECES("\xFF", -1);
  PIECES("\xC2", -1);                      /* truncated at the end */
  PIECES("\xE2\x82", -2);
  PIECES("\xF0\x9F\x98", -3);
  PIECES("\xF0\x9F", -2);
  PIECES("a\xE2\x82z", 1, -2, 1);          /* truncated inside: the subpart, then z */
  PIECES("\xE2\x82\xE2\x82\xAC", -2, 3);   /* no valid character swallowed */
  PIECES("\xF0\x9F\x98" "a", -3, 1);
  PIECES("\xF1\x80\x80\xC0", -3, -1);
  PIECES("\xC2\x41", -1, 1);
  PIECES("\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41", -2, -1, -3, -2, 1); /* Unicode's table 3-11 */
  PIECES("\xEF\xBF\xBD", 3);               /* a real U+FFFD is valid */
  PIECES("a\x00z", 1, 1, 1);               /* NUL is a character */
  CHECK(!utf8_valid("\xc3", 1));
  CHECK(!utf8_valid("\xc0\xaf", 2));
  CHECK(!utf8_valid("\xed\xa0\x80", 3));
  CHECK(!utf8_valid("\xf4\x90\x80\x80", 4));
  CHECK(!utf8_valid("caf\xc3\xa9\xff", 6));
  CHECK(utf8_valid("caf\xc3\xa9", 5));
  CHECK(utf8_valid("", 0));
}

/* Every string of up to 3 bytes: utf8_valid agrees with decoding, pieces tile the input, and an
 * invalid piece is never longer than 3 bytes or followed by bytes it could have taken. */
static void test_exhaustive(void) {
  int bad = 0;
  for (uint32_t x = 0; x < (1u << 24); x++) {
    char s[3] = {(char)(x >> 16), (char)(x >> 8), (char)x};
    size_t i = 0;
    int valid = 1;
    while (i < 3) {
      uint32_t cp;
      size_t len = utf8_decode(s + i, 3 - i, &cp);
      if (len < 1 || len > 3 - i) bad++;
      if (cp == UTF8_INVALID) valid = 0;
      else if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) bad++;
      i += len;
    }
    if (i != 3 || valid != utf8_valid(s, 3)) bad++;
  }
  CHECK(bad == 0);
}

int main(void) {
  test_boundaries();
  test_round_trip();
  test_invalid();
  test_exhaustive();
  return check_report("test_utf8");
}
