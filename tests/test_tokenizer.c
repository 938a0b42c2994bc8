/* test_tokenizer: the WordPiece tokenizer against HF-generated cases and its own contract.
 *
 * Expected ids come from tests/fixtures/tokenizer/unit_cases.tsv (scripts/gen_tokenizer_fixture.py,
 * HF tokenizers); the other checks are properties (truncation keeps [SEP] last, a 101-character
 * word is [UNK], accents and invalid bytes vanish, CJK characters split, tokenizer.json and
 * vocab.txt give the same vocabulary) and error paths. The large parity runs live in
 * tests/py/test_tokenizer_parity.py. Runs from the repository root (ctest's working directory).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "tokenizer.h"

#define FIX "tests/fixtures/tokenizer/"

/* Encodes a NUL-terminated string; returns the number of ids (copied into out, up to cap). */
static size_t encode(const tok *t, const char *s, int max_length, tok_buffer *b) {
  int rc = tok_encode(t, s, strlen(s), max_length, b);
  CHECK(rc == 0);
  return rc == 0 ? b->n : 0;
}

static int same_ids(const tok *t, const char *a, const char *b, int max_length) {
  tok_buffer x = {0}, y = {0};
  encode(t, a, max_length, &x);
  encode(t, b, max_length, &y);
  int same = x.n == y.n && !memcmp(x.ids, y.ids, x.n * sizeof *x.ids);
  tok_buffer_free(&x);
  tok_buffer_free(&y);
  return same;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* The HF-generated cases: max_length TAB hex(text) TAB ids. Each text is copied into a heap
 * buffer of exactly its length, so AddressSanitizer sees any read past the end. */
static void test_unit_cases(const tok *t) {
  FILE *f = fopen(FIX "unit_cases.tsv", "r");
  CHECK(f != NULL);
  if (!f) return;
  char line[16384];
  int cases = 0;
  tok_buffer b = {0};
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    char *tab1 = strchr(line, '\t');
    char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    CHECK(tab1 && tab2);
    if (!tab1 || !tab2) break;
    int max_length = atoi(line);
    size_t hex_len = (size_t)(tab2 - tab1 - 1);
    size_t n = hex_len / 2;
    char *text = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
      text[i] = (char)(hexval(tab1[1 + 2 * i]) * 16 + hexval(tab1[2 + 2 * i]));
    int32_t want[4096];
    size_t n_want = 0;
    for (char *p = tab2 + 1; *p && *p != '\n' && n_want < 4096;) {
      want[n_want++] = (int32_t)strtol(p, &p, 10);
      while (*p == ' ') p++;
    }
    CHECK(tok_encode(t, text, n, max_length, &b) == 0);
    int ok = b.n == n_want && !memcmp(b.ids, want, n_want * sizeof *want);
    CHECK(ok);
    if (!ok) fprintf(stderr, "  unit case %d (max_length %d, %zu bytes): %zu ids, want %zu\n", cases,
                     max_length, n, b.n, n_want);
    free(text);
    cases++;
  }
  fclose(f);
  tok_buffer_free(&b);
  CHECK(cases >= 15);
}

static void test_special_ids(const tok *t) {
  /* DESIGN.md: PAD 0, UNK 100, CLS 101, SEP 102, MASK 103 (bert-base-uncased) */
  CHECK(tok_lookup(t, "[PAD]") == 0);
  CHECK(tok_lookup(t, "[UNK]") == 100 && tok_unk_id(t) == 100);
  CHECK(tok_lookup(t, "[CLS]") == 101 && tok_cls_id(t) == 101);
  CHECK(tok_lookup(t, "[SEP]") == 102 && tok_sep_id(t) == 102);
  CHECK(tok_lookup(t, "[MASK]") == 103);
  CHECK(tok_vocab_size(t) == 30522);
  CHECK(tok_token(t, 101) && !strcmp(tok_token(t, 101), "[CLS]"));
  CHECK(tok_token(t, -1) == NULL && tok_token(t, 30522) == NULL);
  CHECK(tok_lookup(t, "no-such-token-here") == -1);
  int32_t hello = tok_lookup(t, "hello");
  CHECK(hello >= 0 && !strcmp(tok_token(t, hello), "hello"));

  tok_buffer b = {0};
  CHECK(encode(t, "", 0, &b) == 2);
  CHECK(b.ids[0] == tok_cls_id(t) && b.ids[1] == tok_sep_id(t));
  /* added tokens are matched in the raw text, case-sensitively */
  CHECK(encode(t, "a [MASK] b", 0, &b) == 5 && b.ids[2] == tok_lookup(t, "[MASK]"));
  CHECK(encode(t, "x[SEP]y", 0, &b) == 5 && b.ids[2] == tok_sep_id(t));
  CHECK(!same_ids(t, "[mask]", "[MASK]", 0));
  tok_buffer_free(&b);
}

static void test_truncation(const tok *t) {
  const char *text = "the quick brown fox jumps over the lazy dog and keeps on running far away";
  tok_buffer full = {0}, b = {0};
  size_t n = encode(t, text, 0, &full);
  CHECK(n > 12);
  for (int m = 2; m <= (int)n + 3; m++) {
    size_t k = encode(t, text, m, &b);
    size_t want = (size_t)m < n ? (size_t)m : n;
    CHECK(k == want);
    CHECK(b.ids[0] == tok_cls_id(t) && b.ids[k - 1] == tok_sep_id(t));
    CHECK(!memcmp(b.ids, full.ids, (k - 1) * sizeof *b.ids));
  }
  /* truncation inside a word's pieces keeps the first pieces */
  n = encode(t, "unaffable", 0, &full);
  CHECK(n >= 4); /* one word, several pieces */
  CHECK(encode(t, "unaffable", 3, &b) == 3 && b.ids[1] == full.ids[1]);
  tok_buffer_free(&full);
  tok_buffer_free(&b);
}

static void test_long_words(const tok *t) {
  char word[512];
  tok_buffer b = {0};
  memset(word, 'a', sizeof word);
  word[101] = '\0';
  CHECK(encode(t, word, 0, &b) == 3 && b.ids[1] == tok_unk_id(t));
  word[100] = '\0';
  CHECK(encode(t, word, 0, &b) > 3);
  for (size_t i = 1; i + 1 < b.n; i++) CHECK(b.ids[i] != tok_unk_id(t));
  /* 100 characters of 2 bytes each is still a word; 101 is [UNK] */
  char accents[512] = "";
  for (int i = 0; i < 100; i++) strcat(accents, "\xC3\xA9");
  char es[128];
  memset(es, 'e', 100);
  es[100] = '\0';
  CHECK(same_ids(t, accents, es, 0));
  strcat(accents, "\xC3\xA9");
  CHECK(encode(t, accents, 0, &b) == 3 && b.ids[1] == tok_unk_id(t));
  /* a huge word with no space: one [UNK], no matter its length */
  size_t big = 1 << 20;
  char *huge = malloc(big + 1);
  memset(huge, 'z', big);
  huge[big] = '\0';
  CHECK(encode(t, huge, 0, &b) == 3 && b.ids[1] == tok_unk_id(t));
  free(huge);
  tok_buffer_free(&b);
}

static void test_accents_cjk_invalid(const tok *t) {
  CHECK(same_ids(t, "Cr\xC3\xA8me Br\xC3\xBBl\xC3\xA9" "e", "creme brulee", 0));
  CHECK(same_ids(t, "CAFE\xCC\x81", "cafe", 0));              /* combining acute */
  CHECK(same_ids(t, "\xC4\xB0stanbul", "istanbul", 0));       /* U+0130 */
  CHECK(same_ids(t, "\xE4\xB8\xAD\xE6\x96\x87", "\xE4\xB8\xAD \xE6\x96\x87", 0)); /* 中文 */
  CHECK(same_ids(t, "ab\xFF" "cd", "abcd", 0));
  CHECK(same_ids(t, "ab\xE2\x82" "cd", "abcd", 0));           /* truncated 3-byte sequence */
  CHECK(same_ids(t, "ab\xED\xA0\x80" "cd", "abcd", 0));       /* surrogate */
  CHECK(same_ids(t, "ab\xC0\xAF" "cd", "abcd", 0));           /* overlong */
  CHECK(same_ids(t, "\xC3" "(", "(", 0));                     /* invalid lead keeps the next char */
  CHECK(same_ids(t, "zero\xE2\x80\x8Bwidth", "zerowidth", 0)); /* U+200B is dropped */
  CHECK(same_ids(t, "a\xC2\xA0" "b", "a b", 0));              /* no-break space */
  CHECK(same_ids(t, "a\x0B" "b", "ab", 0));                   /* VT is a control: dropped */
  CHECK(same_ids(t, "hello,world!", "hello , world !", 0));
  /* invalid bytes at the very end of the buffer: exact-size heap copy for ASan */
  static const char *const tails[] = {"x\xC3", "x\xE2\x82", "x\xF0\x9F\x98", "x\xF4"};
  tok_buffer b = {0};
  for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
    size_t n = strlen(tails[i]);
    char *p = malloc(n);
    memcpy(p, tails[i], n);
    CHECK(tok_encode(t, p, n, 0, &b) == 0 && b.n == 3 && b.ids[1] == tok_lookup(t, "x"));
    free(p);
  }
  const char *words;
  size_t words_len;
  const char *mixed = "Hello, W\xC3\xB6rld! [MASK]";
  CHECK(tok_words(t, mixed, strlen(mixed), &b, &words, &words_len) == 0);
  CHECK(!strcmp(words, "hello , world ! [MASK]") && words_len == strlen(words));
  tok_buffer_free(&b);
}

/* Same vocabulary (every id's string) and same ids on a few texts. */
static void check_same_vocab(const char *a_path, const char *b_path) {
  tok *a = NULL, *b = NULL;
  CHECK(tok_open_file(a_path, &a) == 0);
  CHECK(tok_open_file(b_path, &b) == 0);
  if (!a || !b) {
    fprintf(stderr, "  %s\n", err_msg());
    tok_free(a);
    tok_free(b);
    return;
  }
  CHECK(tok_vocab_size(a) == tok_vocab_size(b));
  int differ = 0;
  for (int32_t id = 0; id < tok_vocab_size(a); id++) {
    const char *x = tok_token(a, id), *y = tok_token(b, id);
    if (!x || !y || strcmp(x, y) || tok_lookup(b, x) != tok_lookup(a, x)) differ++;
  }
  CHECK(differ == 0);
  CHECK(tok_unk_id(a) == tok_unk_id(b) && tok_cls_id(a) == tok_cls_id(b) &&
        tok_sep_id(a) == tok_sep_id(b));
  static const char *const texts[] = {"Hello world, unaffable playing!", "[MASK] the \xC3\xA9t\xC3\xA9",
                                      "\xE4\xB8\xAD zzz"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    tok_buffer x = {0}, y = {0};
    encode(a, texts[i], 0, &x);
    encode(b, texts[i], 0, &y);
    CHECK(x.n == y.n && !memcmp(x.ids, y.ids, x.n * sizeof *x.ids));
    tok_buffer_free(&x);
    tok_buffer_free(&y);
  }
  printf("  %s and %s: %d ids, %d differ\n", a_path, b_path, tok_vocab_size(a), differ);
  tok_free(a);
  tok_free(b);
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static void test_errors(void) {
  tok *t = NULL;
  tok_free(NULL);
  tok_buffer_free(NULL);
  CHECK(tok_open("/nonexistent-spladex-dir", &t) == ERR_IO && t == NULL);
  CHECK(strstr(err_msg(), "/nonexistent-spladex-dir") != NULL);
  char path[] = "/tmp/spladex-tok-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  static const char *const bad[] = {
      "{ not json",
      "{\"model\": {\"type\": \"WordPiece\"}}",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}",
      "{\"model\": {\"vocab\": {\"a\": -1}}}",
      "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 0}}}",
      "{\"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1}}}", /* no [SEP] */
      /* normalizers and pre-tokenizers spladex does not implement */
      "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": []}, \"pre_tokenizer\": {\"type\": "
      "\"BertPreTokenizer\"}, \"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2}}}",
      "{\"normalizer\": {\"type\": \"BertNormalizer\", \"strip_accents\": 1}, \"pre_tokenizer\": {\"type\": "
      "\"BertPreTokenizer\"}, \"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2}}}",
      "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, "
      "\"[SEP]\": 2}}}",
      "{\"model\": {\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2}}}", /* no pre_tokenizer */
      "[UNK]\n[CLS]\nhello\n", /* vocab.txt without [SEP] */
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(write_file(path, bad[i]) == 0);
    int rc = tok_open_file(path, &t);
    CHECK(rc == ERR_FORMAT && t == NULL);
    CHECK(strstr(err_msg(), path) != NULL);
    if (rc != ERR_FORMAT) fprintf(stderr, "  bad tokenizer %zu: rc %d\n", i, rc);
    tok_free(t);
    t = NULL;
  }
  /* a minimal valid tokenizer.json */
  CHECK(write_file(path, "{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"model\": {\"type\": "
                         "\"WordPiece\", \"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2, \"a\": 3, "
                         "\"##b\": 4}}}") == 0);
  CHECK(tok_open_file(path, &t) == 0);
  if (t) {
    tok_buffer b = {0};
    CHECK(encode(t, "ab ba", 0, &b) == 5 && b.ids[1] == 3 && b.ids[2] == 4 && b.ids[3] == 0);
    tok_buffer_free(&b);
  }
  tok_free(t);
  remove(path);
}

/* The normalizer settings: tokenizer.json's, tokenizer_config.json's, their disagreement. */
static void test_normalizer_settings(void) {
  char dir[] = "/tmp/spladex-tokdir-XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0);
    return;
  }
  char json[256], config[256], vocab[256];
  snprintf(json, sizeof json, "%s/tokenizer.json", dir);
  snprintf(config, sizeof config, "%s/tokenizer_config.json", dir);
  snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
  static const char *const vocab_json = "\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0, "
                                        "\"[CLS]\": 1, \"[SEP]\": 2, \"Ab\": 3, \"ab\": 4, \"\u00e9\": 5, \"e\": 6}}";
  char text[1024];
  tok *t = NULL;
  tok_buffer b = {0};
  /* cased: "Ab" stays "Ab", é keeps its accent (strip_accents null follows lowercase false) */
  snprintf(text, sizeof text, "{\"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": false, "
           "\"strip_accents\": null}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, %s}", vocab_json);
  CHECK(write_file(json, text) == 0);
  CHECK(tok_open(dir, &t) == 0);
  if (t) {
    tok_normalizer n = tok_get_normalizer(t);
    CHECK(n.lowercase == 0 && n.strip_accents == 0 && n.clean_text == 1 && n.handle_chinese_chars == 1);
    CHECK(encode(t, "Ab ab \xc3\xa9", 0, &b) == 5 && b.ids[1] == 3 && b.ids[2] == 4 && b.ids[3] == 5);
  }
  tok_free(t);
  t = NULL;
  /* a tokenizer_config.json that agrees is fine; one that contradicts is refused, naming both */
  CHECK(write_file(config, "{\"do_lower_case\": false, \"strip_accents\": null}") == 0);
  CHECK(tok_open(dir, &t) == 0);
  tok_free(t);
  t = NULL;
  CHECK(write_file(config, "{\"do_lower_case\": true}") == 0);
  CHECK(tok_open(dir, &t) == ERR_FORMAT && t == NULL);
  CHECK(strstr(err_msg(), "tokenizer_config.json") != NULL && strstr(err_msg(), "tokenizer.json") != NULL);
  /* a null normalizer normalizes nothing */
  snprintf(text, sizeof text, "{\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, %s}",
           vocab_json);
  CHECK(write_file(json, text) == 0);
  CHECK(write_file(config, "{}") == 0); /* transformers would lowercase (the default): refused */
  CHECK(tok_open(dir, &t) == ERR_FORMAT && t == NULL);
  CHECK(write_file(config, "{\"tokenizer_class\": \"PreTrainedTokenizerFast\"}") == 0);
  CHECK(tok_open(dir, &t) == 0);
  if (t) {
    tok_normalizer n = tok_get_normalizer(t);
    CHECK(!n.lowercase && !n.strip_accents && !n.clean_text && !n.handle_chinese_chars);
  }
  tok_free(t);
  t = NULL;
  /* vocab.txt alone: tokenizer_config.json decides; strip_accents true without lowercase */
  remove(json);
  CHECK(write_file(vocab, "[UNK]\n[CLS]\n[SEP]\nAb\nab\n\xc3\xa9\ne\n") == 0);
  CHECK(write_file(config, "{\"do_lower_case\": false, \"strip_accents\": true}") == 0);
  CHECK(tok_open(dir, &t) == 0);
  if (t) {
    tok_normalizer n = tok_get_normalizer(t);
    CHECK(n.lowercase == 0 && n.strip_accents == 1 && n.clean_text == 1);
    CHECK(encode(t, "Ab \xc3\xa9", 0, &b) == 4 && b.ids[1] == 3 && b.ids[2] == 6);
  }
  tok_free(t);
  t = NULL;
  /* vocab.txt with no config at all: bert-base-uncased's normalizer */
  remove(config);
  CHECK(tok_open(dir, &t) == 0);
  if (t) CHECK(encode(t, "Ab", 0, &b) == 3 && b.ids[1] == 4);
  tok_free(t);
  tok_buffer_free(&b);
  remove(vocab);
  rmdir(dir);
}

int main(void) {
  tok *t = NULL;
  if (tok_open_file(FIX "vocab.txt", &t) < 0) {
    fprintf(stderr, "test_tokenizer: %s\n", err_msg());
    return 1;
  }
  test_special_ids(t);
  test_unit_cases(t);
  test_truncation(t);
  test_long_words(t);
  test_accents_cjk_invalid(t);
  tok_free(t);
  test_normalizer_settings();

  /* directory lookup: tok_open on a directory with vocab.txt */
  CHECK(tok_open("tests/fixtures/tokenizer", &t) == 0 && tok_vocab_size(t) == 30522);
  tok_free(t);

  check_same_vocab(FIX "mini/vocab.txt", FIX "mini/tokenizer.json");
  const char *tiny = getenv("SPLADEX_MODEL_TINY");
  char tiny_json[4096];
  snprintf(tiny_json, sizeof tiny_json, "%s/tokenizer.json", tiny ? tiny : "models/splade-tiny");
  FILE *f = fopen(tiny_json, "rb");
  if (f) {
    fclose(f);
    check_same_vocab(FIX "vocab.txt", tiny_json);
  } else {
    printf("  note: %s absent, the full-vocabulary json/txt comparison did not run\n", tiny_json);
  }
  test_errors();
  return check_report("test_tokenizer");
}
