/* tokenizer: bert-base-uncased WordPiece, identical to HF tokenizers' BertTokenizerFast pipeline
 * (tokenizers 0.23.3: AddedVocabulary -> BertNormalizer -> BertPreTokenizer -> WordPiece ->
 * "[CLS] $A [SEP]" with right truncation).
 *
 * One pass over the bytes, no allocation per token or per word:
 *   1. Added tokens ([PAD] [UNK] [CLS] [SEP] [MASK], or tokenizer.json's added_tokens) are
 *      matched on the raw text first, leftmost-longest, like HF's AddedVocabulary; they emit
 *      their id directly and split words.
 *   2. BertNormalizer per code point: drop NUL, U+FFFD and "other" characters (Cc Cf Cs Co,
 *      tab/newline/CR excepted); whitespace -> separator; CJK ideographs -> a word of their own;
 *      canonical decomposition (NFD, with canonical reordering of the marks that survive),
 *      drop Mn, lowercase (Rust char::to_lowercase; U+0130 -> "i" U+0307).
 *   3. BertPreTokenizer on the normalized characters: split on whitespace, and each
 *      punctuation character (ASCII punctuation or Unicode P*) is a word of its own.
 *   4. WordPiece: a word of more than max_input_chars_per_word (100) characters is [UNK];
 *      otherwise greedy longest-match, "##" continuations; a word with an unmatched rest is [UNK].
 * Unicode data come from libutf8proc. HF's Rust code mixes Unicode versions (old crates for
 * accents/punctuation/control, a recent std for lowercase/whitespace), so the code points where
 * the two disagree are patched from host/tokenizer_tables.h, which
 * scripts/gen_tokenizer_tables.py generates by asking the installed `tokenizers` about every
 * code point; tests/py/test_tokenizer_parity.py checks all 1,112,064 of them.
 * ASCII takes a table-driven fast path; vocabulary lookup is an open-addressing hash table over
 * FNV-1a hashes ("##" continuations hash from the state after "##", so nothing is copied).
 * With truncation, encoding stops as soon as max_length ids are certain.
 *
 * Invalid UTF-8: decoded (io/utf8.h) like Python's bytes.decode("utf-8", errors="replace") --
 * each maximal invalid subsequence (stray continuation byte, overlong form, surrogate,
 * > U+10FFFF, truncated sequence) becomes U+FFFD and no valid character is swallowed -- and
 * BERT's clean-text step deletes U+FFFD. So invalid bytes vanish without splitting the word
 * around them: "ab\xFFcd" tokenizes as "abcd", exactly as HF tokenizers does on the
 * errors="replace" string.
 */
#include "tokenizer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "err.h"
#include "grow.h"
#include "tokenizer_tables.h"
#include "utf8.h"

#define TOK_FNV_OFFSET 14695981039346656037ull
#define TOK_FNV_PRIME 1099511628211ull
#define TOK_MAX_ADDED 64

/* ASCII classes for the raw-text pass (clean_text) and for final characters (pre-tokenizer). */
enum { TOK_ASCII_WORD = 0, TOK_ASCII_DROP = 1, TOK_ASCII_SPACE = 2, TOK_ASCII_PUNCT = 3 };

typedef struct {
  uint64_t hash;
  int32_t id; /* -1: empty slot */
  uint32_t pad;
} tok_slot;

typedef struct {
  char *text;
  size_t len;
  int32_t id;
  int lstrip, rstrip; /* byte-level BPE: the token swallows the whitespace before / after it */
} tok_added;

/* Byte-level BPE: a merge of the symbol pair (left, right), ranked, into the vocabulary id merged. */
typedef struct {
  uint64_t key; /* left << 32 | right; 0 with merged -1: empty slot */
  int32_t rank;
  int32_t merged;
} tok_merge;

struct tok {
  char *arena;        /* all token strings, NUL-terminated */
  uint32_t *offset;   /* (V) offset of id's token in arena, UINT32_MAX if the id has none */
  uint32_t *length;   /* (V) */
  int vocab_size;     /* max id + 1 */
  tok_slot *slots;    /* vocabulary hash table (WordPiece's vocab, without added-only tokens) */
  size_t slot_mask;
  size_t max_piece;   /* longest word-initial token, bytes */
  size_t max_cont;    /* longest "##" token without the "##", bytes */
  uint64_t cont_seed; /* FNV state after hashing "##" */
  int32_t unk, cls, sep;
  int max_word_chars; /* max_input_chars_per_word */
  tok_normalizer norm; /* BertNormalizer's settings */
  const tok_norm_exception *norm_exc; /* tok_norm_tables[] entry of those settings */
  size_t n_norm_exc;
  tok_added added[TOK_MAX_ADDED];
  int n_added;
  uint8_t added_first[256]; /* 1 if some added token starts with this byte */
  uint8_t ascii[128];       /* TOK_ASCII_* class of each ASCII byte */
  /* byte-level BPE (tokenizer.json model.type "BPE"), else WordPiece */
  int bpe;
  int add_prefix_space;     /* ByteLevel pre-tokenizer */
  int ignore_merges;        /* a word that is a vocabulary token is that token */
  int32_t byte_id[256];     /* id of each byte's GPT-2 character (bytes_to_unicode), -1 if none */
  tok_merge *merges;        /* hash table of the merges */
  size_t merge_mask;
  uint64_t serial;          /* unique per loaded BPE tok (> 0): the key of the tok_buffer word caches */
};

/* ---------------------------------------------------------------------------------------- */
/* Character classes                                                                         */

static void tok_init_ascii(uint8_t table[128], int clean_text) {
  for (int c = 0; c < 128; c++) {
    uint8_t k = TOK_ASCII_WORD;
    if (clean_text && (c < 0x20 || c == 0x7F)) k = TOK_ASCII_DROP; /* Cc (0x0B, 0x0C too): clean_text drops */
    if (c == '\t' || c == '\n' || c == '\r' || c == ' ') k = TOK_ASCII_SPACE; /* except these */
    if (!clean_text && (c == 0x0B || c == 0x0C)) k = TOK_ASCII_SPACE; /* kept: Rust's is_whitespace */
    if ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
        (c >= 0x7B && c <= 0x7E))
      k = TOK_ASCII_PUNCT; /* Rust's is_ascii_punctuation, symbols like $ + < = > ^ ` | ~ too */
    table[c] = k;
  }
}

/* Rust char::is_whitespace (the White_Space property). */
static int tok_is_whitespace(uint32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x9 && c <= 0xD);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* tokenizers' is_chinese_char (the CJK Unified Ideographs blocks it lists, nothing else). */
static int tok_is_chinese(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static const tok_norm_exception *tok_find_norm_exception(const tok *t, uint32_t c) {
  const tok_norm_exception *e = t->norm_exc;
  size_t lo = 0, hi = t->n_norm_exc;
  if (!hi || c < e[0].cp) return NULL;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (e[mid].cp < c) lo = mid + 1;
    else hi = mid;
  }
  return lo < t->n_norm_exc && e[lo].cp == c ? &e[lo] : NULL;
}

static int tok_in_punct_exceptions(uint32_t c) {
  size_t lo = 0, hi = sizeof tok_punct_exceptions / sizeof tok_punct_exceptions[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (tok_punct_exceptions[mid] < c) lo = mid + 1;
    else hi = mid;
  }
  return lo < sizeof tok_punct_exceptions / sizeof tok_punct_exceptions[0] &&
         tok_punct_exceptions[lo] == c;
}

/* BertPreTokenizer's is_bert_punc for a non-ASCII character. */
static int tok_is_punct_unicode(uint32_t c) {
  utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
  int punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
  return punct != tok_in_punct_exceptions(c);
}

/* ---------------------------------------------------------------------------------------- */
/* Normalizer settings                                                                       */

static tok_normalizer tok_normalizer_uncased(void) { return (tok_normalizer){1, 1, 1, 1}; }

static void tok_set_normalizer(tok *t, tok_normalizer n) {
  t->norm = n;
  size_t table = (size_t)(n.clean_text * 4 + n.strip_accents * 2 + n.lowercase);
  t->norm_exc = tok_norm_tables[table].entries;
  t->n_norm_exc = tok_norm_tables[table].n;
  tok_init_ascii(t->ascii, n.clean_text);
}

tok_normalizer tok_get_normalizer(const tok *t) { return t->norm; }

/* ---------------------------------------------------------------------------------------- */
/* Vocabulary                                                                                */

static uint64_t tok_hash_from(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * TOK_FNV_PRIME;
  return h;
}

/* The id of bytes s[0, n) (prefixed by "##" when cont), or -1; h is its hash. */
static int32_t tok_find(const tok *t, uint64_t h, const char *s, size_t n, int cont) {
  size_t i = (size_t)h & t->slot_mask;
  size_t full = n + (cont ? 2 : 0);
  for (;;) {
    const tok_slot *slot = &t->slots[i];
    if (slot->id < 0) return -1;
    if (slot->hash == h && t->length[slot->id] == full) {
      const char *tokstr = t->arena + t->offset[slot->id];
      if (!cont) {
        if (!memcmp(tokstr, s, n)) return slot->id;
      } else if (tokstr[0] == '#' && tokstr[1] == '#' && !memcmp(tokstr + 2, s, n)) {
        return slot->id;
      }
    }
    i = (i + 1) & t->slot_mask;
  }
}

/* Builds the hash table over every id that has a token; a repeated token string maps to its
 * last id (as HF's HashMap insert in vocabulary order). */
static int tok_build_index(tok *t) {
  size_t cap = 16;
  while (cap < (size_t)t->vocab_size * 2) cap *= 2;
  t->slots = malloc(cap * sizeof *t->slots);
  if (!t->slots) return err_set(ERR_NOMEM, "tokenizer: out of memory (%zu slots)", cap);
  for (size_t i = 0; i < cap; i++) t->slots[i].id = -1;
  t->slot_mask = cap - 1;
  t->cont_seed = tok_hash_from(TOK_FNV_OFFSET, "##", 2);
  for (int32_t id = 0; id < t->vocab_size; id++) {
    if (t->offset[id] == UINT32_MAX) continue;
    const char *s = t->arena + t->offset[id];
    size_t n = t->length[id];
    uint64_t h = tok_hash_from(TOK_FNV_OFFSET, s, n);
    size_t i = (size_t)h & t->slot_mask;
    while (t->slots[i].id >= 0) {
      const tok_slot *slot = &t->slots[i];
      if (slot->hash == h && t->length[slot->id] == n &&
          !memcmp(t->arena + t->offset[slot->id], s, n))
        break; /* duplicate string: the later id wins */
      i = (i + 1) & t->slot_mask;
    }
    t->slots[i].hash = h;
    t->slots[i].id = id;
    if (n >= 2 && s[0] == '#' && s[1] == '#') {
      if (n - 2 > t->max_cont) t->max_cont = n - 2;
    }
    if (n > t->max_piece) t->max_piece = n;
  }
  return 0;
}

static tok *tok_alloc(int vocab_size, size_t arena_bytes) {
  tok *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->vocab_size = vocab_size;
  t->arena = malloc(arena_bytes ? arena_bytes : 1);
  t->offset = malloc((size_t)(vocab_size ? vocab_size : 1) * sizeof *t->offset);
  t->length = calloc((size_t)(vocab_size ? vocab_size : 1), sizeof *t->length);
  t->max_word_chars = 100;
  t->unk = t->cls = t->sep = -1;
  tok_set_normalizer(t, tok_normalizer_uncased());
  if (!t->arena || !t->offset || !t->length) {
    tok_free(t);
    return NULL;
  }
  for (int i = 0; i < vocab_size; i++) t->offset[i] = UINT32_MAX;
  return t;
}

static int tok_add_added(tok *t, const char *text, int32_t id, const char *path) {
  if (t->n_added == TOK_MAX_ADDED)
    return err_set(ERR_FORMAT, "%s: more than %d added tokens are not supported", path,
                   TOK_MAX_ADDED);
  size_t n = strlen(text);
  if (!n) return 0;
  char *copy = malloc(n + 1);
  if (!copy) return err_set(ERR_NOMEM, "%s: out of memory", path);
  memcpy(copy, text, n + 1);
  t->added[t->n_added].text = copy;
  t->added[t->n_added].len = n;
  t->added[t->n_added].id = id;
  t->n_added++;
  t->added_first[(unsigned char)text[0]] = 1;
  return 0;
}

/* Looks up the ids of [UNK] (or the model's unk_token), [CLS] and [SEP]. */
static int tok_special_ids(tok *t, const char *path, const char *unk_token) {
  t->unk = tok_lookup(t, unk_token);
  t->cls = tok_lookup(t, "[CLS]");
  t->sep = tok_lookup(t, "[SEP]");
  if (t->unk < 0) return err_set(ERR_FORMAT, "%s: the vocabulary has no '%s' token", path, unk_token);
  if (t->cls < 0) return err_set(ERR_FORMAT, "%s: the vocabulary has no '[CLS]' token", path);
  if (t->sep < 0) return err_set(ERR_FORMAT, "%s: the vocabulary has no '[SEP]' token", path);
  return 0;
}

static int tok_read_file(const char *path, char **data, size_t *size) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0; /* cap: bytes allocated, one of them kept for the NUL */
  if (!f) return err_set(ERR_IO, "%s: %s", path, strerror(errno));
  for (;;) {
    if (grow(&buf, &cap, n + (1 << 16) + 1, 1)) goto nomem;
    size_t room = cap - 1 - n;
    size_t got = fread(buf + n, 1, room, f);
    n += got;
    if (got < room) {
      if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return err_set(ERR_IO, "%s: read failed: %s", path, strerror(e));
      }
      break;
    }
  }
  fclose(f);
  buf[n] = '\0';
  *data = buf;
  *size = n;
  return 0;
nomem:
  free(buf);
  fclose(f);
  return err_set(ERR_NOMEM, "%s: out of memory reading the file", path);
}

static int tok_vocab_txt_settings(const char *vocab_path, tok_normalizer *norm);

/* vocab.txt: token i on line i (a trailing "\r" is removed). Added tokens: the five BERT
 * specials present in the vocabulary, as BertTokenizerFast(vocab_file=...) registers them. */
static int tok_open_vocab_txt(const char *path, char *data, size_t size, tok **out) {
  int rc = 0;
  tok_normalizer norm;
  int lines = 0;
  tok *t = NULL;
  for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
  if (size && data[size - 1] != '\n') lines++;
  if (!lines) return err_set(ERR_FORMAT, "%s: empty vocabulary", path);
  t = tok_alloc(lines, size + 1);
  if (!t) return err_set(ERR_NOMEM, "%s: out of memory", path);
  size_t pos = 0, arena = 0;
  for (int id = 0; id < lines; id++) {
    size_t end = pos;
    while (end < size && data[end] != '\n') end++;
    size_t n = end - pos;
    if (n && data[pos + n - 1] == '\r') n--;
    if (n > UINT32_MAX - 1) {
      rc = err_set(ERR_FORMAT, "%s:%d: token too long", path, id + 1);
      goto fail;
    }
    memcpy(t->arena + arena, data + pos, n);
    t->arena[arena + n] = '\0';
    t->offset[id] = (uint32_t)arena;
    t->length[id] = (uint32_t)n;
    arena += n + 1;
    pos = end + 1;
  }
  if ((rc = tok_build_index(t)) < 0) goto fail;
  static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
    int32_t id = tok_lookup(t, specials[i]);
    if (id >= 0 && (rc = tok_add_added(t, specials[i], id, path)) < 0) goto fail;
  }
  if ((rc = tok_special_ids(t, path, "[UNK]")) < 0) goto fail;
  if ((rc = tok_vocab_txt_settings(path, &norm)) < 0) goto fail;
  tok_set_normalizer(t, norm);
  *out = t;
  return 0;
fail:
  tok_free(t);
  return rc;
}

static int tok_json_bool(const cJSON *obj, const char *key, int dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v || cJSON_IsNull(v)) return dflt;
  return cJSON_IsTrue(v) ? 1 : 0;
}

static int tok_json_is(const cJSON *obj, const char *key, const char *value) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) && !strcmp(v->valuestring, value);
}

/* The normalizer and pre-tokenizer of a parsed tokenizer.json (root): BertNormalizer's settings
 * into *out (a null or absent normalizer: none, all 0, as HF), anything else refused. */
static int tok_json_settings(const char *path, const cJSON *root, tok_normalizer *out) {
  const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
  const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
  if (!tok_json_is(pre, "type", "BertPreTokenizer")) {
    const cJSON *type = pre ? cJSON_GetObjectItemCaseSensitive(pre, "type") : NULL;
    return err_set(ERR_FORMAT, "%s: pre_tokenizer is %s; spladex implements BertPreTokenizer only", path,
                   cJSON_IsString(type) ? type->valuestring : "null");
  }
  if (!norm || cJSON_IsNull(norm)) {
    *out = (tok_normalizer){0, 0, 0, 0};
    return 0;
  }
  if (!tok_json_is(norm, "type", "BertNormalizer")) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(norm, "type");
    return err_set(ERR_FORMAT, "%s: normalizer is %s; spladex implements BertNormalizer only", path,
                   cJSON_IsString(type) ? type->valuestring : "not an object with a type");
  }
  static const char *const flags[] = {"clean_text", "handle_chinese_chars", "lowercase", "strip_accents"};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(norm, flags[i]);
    if (v && !cJSON_IsBool(v) && !(i == 3 && cJSON_IsNull(v)))
      return err_set(ERR_FORMAT, "%s: normalizer.%s must be true or false%s", path, flags[i], i == 3 ? " or null" : "");
  }
  out->clean_text = tok_json_bool(norm, "clean_text", 1);
  out->handle_chinese_chars = tok_json_bool(norm, "handle_chinese_chars", 1);
  out->lowercase = tok_json_bool(norm, "lowercase", 1);
  out->strip_accents = tok_json_bool(norm, "strip_accents", out->lowercase); /* null: as lowercase */
  return 0;
}

/* The directory part of path into dir ("." when there is none). */
static void tok_dirname(const char *path, char *dir, size_t cap) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(dir, cap, ".");
  else
    snprintf(dir, cap, "%.*s", (int)(slash - path) + (slash == path), path);
}

static int tok_is_file(const char *path);

/* Reconciles *norm with the tokenizer_config.json beside vocab_path (transformers'
 * do_lower_case, strip_accents, tokenize_chinese_chars; absent keys at BertTokenizer's defaults:
 * lowercase, strip as lowercase, CJK padding; clean text always). !have: *norm becomes the
 * config's. have: *norm came from a tokenizer.json (named by norm_source), and a config that
 * means otherwise is refused, as spladex cannot know which of the two the model was trained
 * with (transformers follows the config, HF tokenizers the tokenizer.json); a config naming
 * tokenizer_class PreTrainedTokenizerFast leaves the tokenizer.json alone. No config: *norm as
 * it is (uncased when !have). */
static int tok_config_settings(const char *vocab_path, const char *norm_source, tok_normalizer *norm, int have) {
  char dir[4096], path[4200];
  char *data = NULL;
  size_t size = 0;
  int rc = 0;
  cJSON *root = NULL;
  tok_dirname(vocab_path, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  if (!have) *norm = tok_normalizer_uncased();
  if (!tok_is_file(path)) return 0;
  if ((rc = tok_read_file(path, &data, &size)) < 0) return rc;
  root = cJSON_ParseWithLength(data, size);
  free(data);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return err_set(ERR_FORMAT, "%s: not a JSON object", path);
  }
  const cJSON *lower = cJSON_GetObjectItemCaseSensitive(root, "do_lower_case");
  const cJSON *strip = cJSON_GetObjectItemCaseSensitive(root, "strip_accents");
  const cJSON *chinese = cJSON_GetObjectItemCaseSensitive(root, "tokenize_chinese_chars");
  if ((lower && !cJSON_IsBool(lower)) || (strip && !cJSON_IsBool(strip) && !cJSON_IsNull(strip)) ||
      (chinese && !cJSON_IsBool(chinese))) {
    rc = err_set(ERR_FORMAT, "%s: do_lower_case, strip_accents and tokenize_chinese_chars must be true or false "
                 "(strip_accents also null)", path);
    goto done;
  }
  /* A generic fast tokenizer takes tokenizer.json as it is; a BERT one (the class named, or none:
   * config.json's model_type decides) rebuilds the normalizer from these keys, absent ones at
   * BertTokenizer's defaults (transformers 5 does so even over a tokenizer.json). */
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "tokenizer_class");
  if (have && cJSON_IsString(cls) && !strcmp(cls->valuestring, "PreTrainedTokenizerFast")) goto done;
  tok_normalizer c = tok_normalizer_uncased(); /* clean text: always, in BertTokenizer */
  if (lower) c.lowercase = cJSON_IsTrue(lower);
  c.strip_accents = strip && !cJSON_IsNull(strip) ? cJSON_IsTrue(strip) : c.lowercase;
  if (chinese) c.handle_chinese_chars = cJSON_IsTrue(chinese);
  if (have && (c.lowercase != norm->lowercase || c.strip_accents != norm->strip_accents ||
               c.handle_chinese_chars != norm->handle_chinese_chars || c.clean_text != norm->clean_text)) {
    rc = err_set(ERR_FORMAT,
                 "%s: means lowercase %d, strip accents %d, CJK padding %d, clean text %d (absent keys at "
                 "BertTokenizer's defaults, as transformers reads them) but %s's normalizer says %d, %d, %d, %d "
                 "(as HF tokenizers reads it); make the two agree (spladex does not guess which one the model "
                 "was trained with)",
                 path, c.lowercase, c.strip_accents, c.handle_chinese_chars, c.clean_text, norm_source,
                 norm->lowercase, norm->strip_accents, norm->handle_chinese_chars, norm->clean_text);
    goto done;
  }
  *norm = c;
done:
  cJSON_Delete(root);
  return rc;
}

/* The normalizer of a vocab.txt: a tokenizer.json beside it decides (as transformers loads the
 * fast tokenizer from it), checked against tokenizer_config.json; else tokenizer_config.json. */
static int tok_vocab_txt_settings(const char *vocab_path, tok_normalizer *norm) {
  char dir[4096], path[4200];
  tok_dirname(vocab_path, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  if (!tok_is_file(path)) return tok_config_settings(vocab_path, NULL, norm, 0);
  char *data = NULL;
  size_t size = 0;
  int rc = tok_read_file(path, &data, &size);
  if (rc < 0) return rc;
  cJSON *root = cJSON_ParseWithLength(data, size);
  free(data);
  if (!cJSON_IsObject(root)) rc = err_set(ERR_FORMAT, "%s: not valid JSON", path);
  else rc = tok_json_settings(path, root, norm);
  cJSON_Delete(root);
  if (rc < 0) return rc;
  return tok_config_settings(vocab_path, path, norm, 1);
}

static int tok_open_bpe(const char *path, const cJSON *root, tok **out);

/* The vocabulary of a tokenizer.json (WordPiece or BPE): checks every id of model.vocab (an
 * integer in [0, 1e8], none given twice) and of added_tokens (an entry with id and content),
 * allocates a tok for the largest id with room for every string, and copies model.vocab's strings
 * in; *arena is the arena's bytes used, *max_id the largest id. An added token that model.vocab
 * lacks gets its string from tok_json_name_added. 0 and *out, or ERR_FORMAT / ERR_NOMEM naming
 * path (*out is then freed and NULL). */
static int tok_json_vocab(const char *path, const cJSON *vocab, const cJSON *added, tok **out,
                          size_t *arena, int *max_id) {
  int top = -1;
  size_t arena_bytes = 0;
  const cJSON *item;
  *out = NULL;
  cJSON_ArrayForEach(item, vocab) {
    if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > 1e8 ||
        item->valuedouble != (double)(int)item->valuedouble)
      return err_set(ERR_FORMAT, "%s: model.vocab[\"%s\"] is not an id", path, item->string);
    if (item->valueint > top) top = item->valueint;
    arena_bytes += strlen(item->string) + 1;
  }
  cJSON_ArrayForEach(item, added) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
    if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valuedouble > 1e8 || !cJSON_IsString(content))
      return err_set(ERR_FORMAT, "%s: an added_tokens entry lacks id or content", path);
    if (id->valueint > top) top = id->valueint;
    arena_bytes += strlen(content->valuestring) + 1;
  }
  if (top < 0) return err_set(ERR_FORMAT, "%s: empty model.vocab", path);
  tok *t = tok_alloc(top + 1, arena_bytes);
  if (!t) return err_set(ERR_NOMEM, "%s: out of memory", path);
  size_t used = 0;
  cJSON_ArrayForEach(item, vocab) {
    int id = item->valueint;
    size_t n = strlen(item->string);
    if (t->offset[id] != UINT32_MAX) {
      tok_free(t);
      return err_set(ERR_FORMAT, "%s: model.vocab gives id %d to two tokens", path, id);
    }
    memcpy(t->arena + used, item->string, n + 1);
    t->offset[id] = (uint32_t)used;
    t->length[id] = (uint32_t)n;
    used += n + 1;
  }
  *out = t;
  *arena = used;
  *max_id = top;
  return 0;
}

/* An added token outside model.vocab still has a string for tok_token(): content goes into the
 * arena (sized by tok_json_vocab) at *arena for id, unless the id has one. */
static void tok_json_name_added(tok *t, const char *content, int id, size_t *arena) {
  if (t->offset[id] != UINT32_MAX) return;
  size_t n = strlen(content);
  memcpy(t->arena + *arena, content, n + 1);
  t->offset[id] = (uint32_t)*arena;
  t->length[id] = (uint32_t)n;
  *arena += n + 1;
}

/* tokenizer.json: model.vocab (token -> id), model.unk_token, max_input_chars_per_word,
 * added_tokens. The normalizer and pre-tokenizer must be the BERT ones this code implements. */
static int tok_open_tokenizer_json(const char *path, const char *data, size_t size, tok **out) {
  int rc = 0;
  tok *t = NULL;
  cJSON *root = cJSON_ParseWithLength(data, size);
  if (!root) return err_set(ERR_FORMAT, "%s: not valid JSON", path);
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
  const cJSON *kind = model ? cJSON_GetObjectItemCaseSensitive(model, "type") : NULL;
  if (cJSON_IsString(kind) && strcmp(kind->valuestring, "WordPiece") && strcmp(kind->valuestring, "BPE")) {
    rc = err_set(ERR_FORMAT, "%s: model.type %s is not supported (WordPiece, or byte-level BPE as RoBERTa's; "
                 "e.g. XLM-RoBERTa's SentencePiece Unigram is not)", path, kind->valuestring);
    goto fail;
  }
  if (!cJSON_IsObject(vocab)) {
    rc = err_set(ERR_FORMAT, "%s: no model.vocab object", path);
    goto fail;
  }
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
  if (cJSON_IsString(type) && !strcmp(type->valuestring, "BPE")) {
    rc = tok_open_bpe(path, root, out);
    cJSON_Delete(root);
    return rc;
  }
  if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "WordPiece"))) {
    rc = err_set(ERR_FORMAT, "%s: model.type is not WordPiece", path);
    goto fail;
  }
  const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
  if (prefix && !cJSON_IsNull(prefix) && !tok_json_is(model, "continuing_subword_prefix", "##")) {
    rc = err_set(ERR_FORMAT, "%s: model.continuing_subword_prefix is not \"##\"", path);
    goto fail;
  }
  tok_normalizer norm;
  if ((rc = tok_json_settings(path, root, &norm)) < 0) goto fail;
  const cJSON *item;
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  size_t arena = 0;
  int max_id = -1;
  if ((rc = tok_json_vocab(path, vocab, added, &t, &arena, &max_id)) < 0) goto fail;
  const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
  if (cJSON_IsNumber(mc)) {
    if (mc->valueint < 1 || mc->valueint > 100000) {
      rc = err_set(ERR_FORMAT, "%s: model.max_input_chars_per_word out of range", path);
      goto fail;
    }
    t->max_word_chars = mc->valueint;
  }
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
  const char *unk_token = cJSON_IsString(unk) ? unk->valuestring : "[UNK]";
  if ((rc = tok_build_index(t)) < 0) goto fail;
  cJSON_ArrayForEach(item, added) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
    if (tok_json_bool(item, "single_word", 0) || tok_json_bool(item, "lstrip", 0) ||
        tok_json_bool(item, "rstrip", 0) || tok_json_bool(item, "normalized", 0)) {
      rc = err_set(ERR_FORMAT,
                   "%s: added token '%s' uses single_word/lstrip/rstrip/normalized, "
                   "which are not supported",
                   path, content->valuestring);
      goto fail;
    }
    tok_json_name_added(t, content->valuestring, id->valueint, &arena);
    if ((rc = tok_add_added(t, content->valuestring, id->valueint, path)) < 0) goto fail;
  }
  if ((rc = tok_special_ids(t, path, unk_token)) < 0) goto fail;
  if ((rc = tok_config_settings(path, path, &norm, 1)) < 0) goto fail;
  tok_set_normalizer(t, norm);
  cJSON_Delete(root);
  *out = t;
  return 0;
fail:
  cJSON_Delete(root);
  tok_free(t);
  return rc;
}

int tok_open_file(const char *path, tok **out) {
  char *data = NULL;
  size_t size = 0;
  *out = NULL;
  int rc = tok_read_file(path, &data, &size);
  if (rc < 0) return rc;
  size_t i = 0;
  while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) i++;
  if (i < size && data[i] == '{')
    rc = tok_open_tokenizer_json(path, data, size, out);
  else
    rc = tok_open_vocab_txt(path, data, size, out);
  free(data);
  return rc;
}

static int tok_is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tok_open(const char *path, tok **out) {
  static const char *const names[] = {"vocab.txt", "tokenizer.json"};
  char file[4096];
  *out = NULL;
  if (tok_is_file(path)) return tok_open_file(path, out);
  for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
    int n = snprintf(file, sizeof file, "%s/%s", path, names[f]);
    if (n < 0 || (size_t)n >= sizeof file) return err_set(ERR_ARG, "%s: path too long", path);
    if (tok_is_file(file)) return tok_open_file(file, out);
  }
  return err_set(ERR_IO, "%s: no vocab.txt or tokenizer.json", path);
}

void tok_free(tok *t) {
  if (!t) return;
  free(t->merges);
  for (int i = 0; i < t->n_added; i++) free(t->added[i].text);
  free(t->arena);
  free(t->offset);
  free(t->length);
  free(t->slots);
  free(t);
}

size_t tok_truncate_ids(int32_t *ids, size_t n, int32_t last, size_t max_length) {
  if (max_length == 0 || n <= max_length) return n;
  ids[max_length - 1] = last;
  return max_length;
}

int tok_vocab_size(const tok *t) { return t->vocab_size; }

int tok_is_byte_level_bpe(const tok *t) { return t->bpe; }

const char *tok_token(const tok *t, int32_t id) {
  if (id < 0 || id >= t->vocab_size || t->offset[id] == UINT32_MAX) return NULL;
  return t->arena + t->offset[id];
}

int32_t tok_lookup(const tok *t, const char *token) {
  size_t n = strlen(token);
  for (int i = 0; i < t->n_added; i++)
    if (t->added[i].len == n && !memcmp(t->added[i].text, token, n)) return t->added[i].id;
  if (!t->slots) return -1;
  return tok_find(t, tok_hash_from(TOK_FNV_OFFSET, token, n), token, n, 0);
}

int32_t tok_unk_id(const tok *t) { return t->unk; }
int32_t tok_cls_id(const tok *t) { return t->cls; }
int32_t tok_sep_id(const tok *t) { return t->sep; }

/* ---------------------------------------------------------------------------------------- */
/* Encoding                                                                                  */

/* Byte-level BPE: one symbol of a word being merged, and a candidate merge. */
typedef struct {
  int32_t id;
  int prev, next; /* linked symbols; -1 at the ends */
  int alive;
} tok_sym;

typedef struct {
  int32_t rank;
  int pos;
  int32_t merged;
} tok_heap_item;

/* Byte-level BPE's word cache (per tok_buffer, so per thread; HF tokenizers keeps one too): a
 * pre-token of at most TOK_CACHE_MAX_WORD bytes -> its ids. Open addressing over
 * TOK_CACHE_SLOTS slots, at most TOK_CACHE_WORDS words; when full (or its pools are), it is
 * emptied and refills. Valid for the tok whose serial it holds. */
#define TOK_CACHE_SLOTS 32768
#define TOK_CACHE_WORDS 16384
#define TOK_CACHE_MAX_WORD 64
#define TOK_CACHE_BYTES (TOK_CACHE_WORDS * 24)
#define TOK_CACHE_IDS (TOK_CACHE_WORDS * 6)

typedef struct {
  uint64_t hash;
  uint32_t word_at;  /* offset in cache_bytes */
  uint32_t ids_at;   /* offset in cache_ids */
  uint16_t word_len; /* 0: empty slot */
  uint16_t n_ids;
} tok_cache_slot;

/* Every array holds word_cap = max_word_chars * 4 + 8 entries, allocated once per buffer; the
 * BPE arrays grow with the longest text / word seen. */
typedef struct {
  char *word;       /* (word_cap) UTF-8 bytes of the current normalized word */
  size_t word_cap;
  uint32_t *marks;  /* (word_cap) pending combining marks that survive accent stripping */
  uint8_t *ccc;     /* (word_cap) their canonical combining classes */
  uint64_t *hashes; /* (word_cap) WordPiece: hash of each candidate piece */
  size_t *ends;     /* (word_cap) WordPiece: end of each candidate piece */
  char *text;       /* tok_words output */
  size_t text_len, text_cap;
  /* byte-level BPE */
  unsigned char *bpe_text; /* (3 n + 2) the text as HF sees it, invalid UTF-8 as U+FFFD */
  uint32_t *bpe_cps;       /* (n + 2) its code points (0 at an added token) */
  size_t *bpe_at;          /* (n + 2) their byte offsets in bpe_text */
  int32_t *bpe_added;      /* (n + 2) the added token starting at each, or -1 */
  size_t bpe_text_cap, bpe_cps_cap, bpe_at_cap, bpe_added_cap;
  unsigned char *bpe_word; /* add_prefix_space: ' ' and a segment's first pre-token */
  size_t bpe_word_cap;
  tok_sym *sym;            /* (word bytes) */
  tok_heap_item *heap;     /* (3 word bytes + 1) */
  int32_t *word_ids;       /* (word bytes) the ids of the word being merged */
  size_t sym_cap, heap_cap, word_ids_cap;
  tok_cache_slot *cache;   /* (TOK_CACHE_SLOTS) */
  char *cache_bytes;       /* (TOK_CACHE_BYTES) */
  int32_t *cache_ids;      /* (TOK_CACHE_IDS) */
  size_t cache_words, cache_bytes_len, cache_ids_len;
  uint64_t cache_serial;   /* tok.serial of the cached words, 0: none */
} tok_scratch;

typedef struct {
  const tok *t;
  tok_buffer *buf;
  tok_scratch *sc;
  size_t word_len;   /* bytes in sc->word */
  int word_chars;    /* characters in the word, saturating at max_word_chars + 1 */
  int n_marks;
  size_t limit;      /* ids allowed before [SEP] (SIZE_MAX: no truncation) */
  int full;          /* limit reached: stop */
  int words_mode;    /* tok_words: collect words as text instead of ids */
  int nomem;
} tok_state;

static int tok_scratch_get(const tok *t, tok_buffer *buf, tok_scratch **out) {
  tok_scratch *sc = buf->scratch;
  size_t need = (size_t)t->max_word_chars * 4 + 8;
  if (!sc) {
    sc = calloc(1, sizeof *sc);
    if (!sc) return ERR_NOMEM;
    buf->scratch = sc;
  }
  if (sc->word_cap < need) {
    char *w = realloc(sc->word, need);
    uint32_t *m = w ? realloc(sc->marks, need * sizeof *m) : NULL;
    if (w) sc->word = w;
    if (m) sc->marks = m;
    uint8_t *c = m ? realloc(sc->ccc, need) : NULL;
    if (c) sc->ccc = c;
    uint64_t *h = c ? realloc(sc->hashes, need * sizeof *h) : NULL;
    if (h) sc->hashes = h;
    size_t *e = h ? realloc(sc->ends, need * sizeof *e) : NULL;
    if (e) sc->ends = e;
    if (!w || !m || !c || !h || !e) return ERR_NOMEM;
    sc->word_cap = need;
  }
  *out = sc;
  return 0;
}

static int tok_push(tok_state *s, int32_t id) {
  tok_buffer *b = s->buf;
  if (grow(&b->ids, &b->cap, b->n + 1, sizeof *b->ids)) {
    s->nomem = 1;
    s->full = 1;
    return ERR_NOMEM;
  }
  b->ids[b->n++] = id;
  return 0;
}

static void tok_text_append(tok_state *s, const char *p, size_t n) {
  tok_scratch *sc = s->sc;
  if (grow(&sc->text, &sc->text_cap, sc->text_len + n + 2, 1)) {
    s->nomem = 1;
    s->full = 1;
    return;
  }
  if (sc->text_len) sc->text[sc->text_len++] = ' ';
  memcpy(sc->text + sc->text_len, p, n);
  sc->text_len += n;
  sc->text[sc->text_len] = '\0';
}

static void tok_check_limit(tok_state *s) {
  if (s->buf->n >= s->limit) {
    s->buf->n = s->limit;
    s->full = 1;
  }
}

/* Greedy longest-match WordPiece of one normalized word w[0, n) of at most max_word_chars. */
static void tok_wordpiece(tok_state *s, const char *w, size_t n) {
  const tok *t = s->t;
  size_t first = s->buf->n;
  size_t start = 0;
  uint64_t *hashes = s->sc->hashes;
  size_t *ends = s->sc->ends;
  while (start < n) {
    int cont = start > 0;
    size_t max_bytes = cont ? t->max_cont : t->max_piece;
    size_t stop = n - start < max_bytes ? n : start + max_bytes;
    uint64_t h = cont ? t->cont_seed : TOK_FNV_OFFSET;
    int k = 0;
    /* hashes of w[start, e) at each character boundary e in (start, stop] */
    for (size_t e = start; e < stop;) {
      h = (h ^ (unsigned char)w[e]) * TOK_FNV_PRIME;
      e++;
      if (e == n || ((unsigned char)w[e] & 0xC0) != 0x80) {
        hashes[k] = h;
        ends[k] = e;
        k++;
      }
    }
    int32_t id = -1;
    while (k > 0) {
      k--;
      id = tok_find(t, hashes[k], w + start, ends[k] - start, cont);
      if (id >= 0) break;
    }
    if (id < 0) {
      s->buf->n = first;
      tok_push(s, t->unk);
      return;
    }
    if (tok_push(s, id) < 0) return;
    start = ends[k];
  }
}

static void tok_end_word(tok_state *s);

static void tok_word_append(tok_state *s, uint32_t c) {
  if (s->word_chars <= s->t->max_word_chars) {
    s->word_chars++;
    if (s->word_chars <= s->t->max_word_chars) s->word_len += utf8_encode(c, s->sc->word + s->word_len);
  }
}

/* A final (normalized, lowercased) character goes through BertPreTokenizer. */
static void tok_emit_char(tok_state *s, uint32_t c) {
  int punct;
  if (c < 0x80) {
    if (tok_is_whitespace(c)) {
      tok_end_word(s);
      return;
    }
    punct = s->t->ascii[c] == TOK_ASCII_PUNCT;
  } else {
    if (tok_is_whitespace(c)) {
      tok_end_word(s);
      return;
    }
    punct = tok_is_punct_unicode(c);
  }
  if (punct) {
    tok_end_word(s);
    tok_word_append(s, c);
    tok_end_word(s);
  } else {
    tok_word_append(s, c);
  }
}

static uint32_t tok_lower(uint32_t c) { return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c); }

static void tok_emit_lower(tok_state *s, uint32_t c) {
  if (!s->t->norm.lowercase) {
    tok_emit_char(s, c);
    return;
  }
  if (c == 0x130) { /* Rust's char::to_lowercase: the one unconditional 1 -> 2 mapping */
    tok_emit_char(s, 'i');
    tok_emit_char(s, 0x307);
    return;
  }
  tok_emit_char(s, tok_lower(c));
}

/* Canonical reordering of the pending combining marks (stable by class), then emission. */
static void tok_flush_marks(tok_state *s) {
  int n = s->n_marks;
  if (!n) return;
  s->n_marks = 0;
  uint32_t *m = s->sc->marks;
  uint8_t *cc = s->sc->ccc;
  for (int i = 1; i < n; i++) {
    uint32_t mv = m[i];
    uint8_t cv = cc[i];
    int j = i;
    while (j > 0 && cc[j - 1] > cv) {
      m[j] = m[j - 1];
      cc[j] = cc[j - 1];
      j--;
    }
    m[j] = mv;
    cc[j] = cv;
  }
  for (int i = 0; i < n; i++) tok_emit_lower(s, m[i]);
}

static void tok_end_word(tok_state *s) {
  if (s->n_marks) tok_flush_marks(s);
  if (!s->word_chars) return;
  if (s->words_mode) {
    if (s->word_chars > s->t->max_word_chars)
      tok_text_append(s, "[UNK]", 5);
    else
      tok_text_append(s, s->sc->word, s->word_len);
  } else if (s->word_chars > s->t->max_word_chars) {
    tok_push(s, s->t->unk);
  } else {
    tok_wordpiece(s, s->sc->word, s->word_len);
  }
  s->word_len = 0;
  s->word_chars = 0;
  tok_check_limit(s);
}

/* BertNormalizer for one non-ASCII input code point. */
static void tok_normalize_char(tok_state *s, uint32_t c) {
  const tok_normalizer *norm = &s->t->norm;
  /* handle_chinese_chars pads the input character, whatever the later steps make of it */
  int chinese = norm->handle_chinese_chars && tok_is_chinese(c);
  const tok_norm_exception *exc = tok_find_norm_exception(s->t, c);
  if (exc) {
    if (!exc->n) return;
    if (s->n_marks) tok_flush_marks(s);
    if (chinese) tok_end_word(s);
    for (uint32_t i = 0; i < exc->n; i++) tok_emit_char(s, exc->out[i]);
    if (chinese) tok_end_word(s);
    return;
  }
  if (norm->clean_text) {
    if (c == 0xFFFD) return;
    const utf8proc_property_t *prop = utf8proc_get_property((utf8proc_int32_t)c);
    switch (prop->category) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
      return; /* clean_text drops "other" characters; dropping does not split the word */
    default:
      break;
    }
  }
  if (tok_is_whitespace(c)) {
    tok_end_word(s);
    return;
  }
  if (chinese) tok_end_word(s);
  if (!norm->strip_accents) { /* no NFD at all: the character as it is, lowercased or not */
    tok_emit_lower(s, c);
    if (chinese) tok_end_word(s);
    return;
  }
  utf8proc_int32_t dec[8];
  int boundclass = 0;
  utf8proc_ssize_t n =
      utf8proc_decompose_char((utf8proc_int32_t)c, dec, 8, UTF8PROC_DECOMPOSE, &boundclass);
  if (n < 0 || n > 8) { /* cannot happen for a valid code point; keep the character */
    dec[0] = (utf8proc_int32_t)c;
    n = 1;
  }
  for (utf8proc_ssize_t i = 0; i < n; i++) {
    const utf8proc_property_t *dp = utf8proc_get_property(dec[i]);
    if (dp->category == UTF8PROC_CATEGORY_MN) {
      if (dp->combining_class == 0 && s->n_marks) tok_flush_marks(s);
      continue; /* strip accents */
    }
    if (dp->combining_class != 0) {
      if (s->n_marks <= s->t->max_word_chars) {
        s->sc->marks[s->n_marks] = (uint32_t)dec[i];
        s->sc->ccc[s->n_marks] = (uint8_t)dp->combining_class;
        s->n_marks++;
      } else {
        s->word_chars = s->t->max_word_chars + 1; /* the word is too long anyway */
      }
      continue;
    }
    if (s->n_marks) tok_flush_marks(s);
    tok_emit_lower(s, (uint32_t)dec[i]);
  }
  if (chinese) tok_end_word(s);
}

/* Longest added token at p[0, n), or 0. */
static size_t tok_match_added(const tok *t, const unsigned char *p, size_t n, int32_t *id) {
  size_t best = 0;
  for (int i = 0; i < t->n_added; i++) {
    const tok_added *a = &t->added[i];
    if (a->len > best && a->len <= n && !memcmp(a->text, p, a->len)) {
      best = a->len;
      *id = a->id;
    }
  }
  return best;
}

static void tok_run(tok_state *s, const unsigned char *p, size_t n) {
  const tok *t = s->t;
  const uint8_t *ascii = t->ascii;
  size_t i = 0;
  while (i < n && !s->full) {
    unsigned b = p[i];
    if (t->added_first[b]) {
      int32_t id = -1;
      size_t m = tok_match_added(t, p + i, n - i, &id);
      if (m) {
        tok_end_word(s);
        if (s->full) break;
        if (s->words_mode)
          tok_text_append(s, (const char *)p + i, m);
        else
          tok_push(s, id);
        tok_check_limit(s);
        i += m;
        continue;
      }
    }
    if (b < 0x80) {
      switch (ascii[b]) {
      case TOK_ASCII_WORD:
        if (s->n_marks) tok_flush_marks(s);
        /* the fast path: a run of ASCII letters and digits, lowercased */
        do {
          if (s->word_chars < t->max_word_chars) {
            s->sc->word[s->word_len++] = (char)(b >= 'A' && b <= 'Z' && t->norm.lowercase ? b + 32 : b);
            s->word_chars++;
          } else {
            s->word_chars = t->max_word_chars + 1;
          }
          i++;
          if (i == n) break;
          b = p[i];
        } while (b < 0x80 && ascii[b] == TOK_ASCII_WORD && !t->added_first[b]);
        continue;
      case TOK_ASCII_SPACE:
        tok_end_word(s);
        break;
      case TOK_ASCII_PUNCT:
        tok_end_word(s);
        tok_word_append(s, b);
        tok_end_word(s);
        break;
      default: /* TOK_ASCII_DROP */
        break;
      }
      i++;
      continue;
    }
    uint32_t c;
    i += utf8_decode((const char *)p + i, n - i, &c);
    tok_normalize_char(s, c == UTF8_INVALID ? UTF8_REPLACEMENT : c);
  }
  if (!s->full) tok_end_word(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Byte-level BPE (RoBERTa, GPT-2): HF tokenizers' AddedVocabulary -> ByteLevel pre-tokenizer
 * (GPT-2's regex 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+,
 * then each byte as its bytes_to_unicode character) -> BPE (the lowest-ranked adjacent pair
 * merged first, the leftmost among equals, as tokenizers' Word::merge_all) -> "<s> $A </s>". */

static const tok_merge *tok_merge_find(const tok *t, int32_t left, int32_t right) {
  uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
  size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & t->merge_mask;
  for (;;) {
    const tok_merge *m = &t->merges[i];
    if (m->merged < 0) return NULL;
    if (m->key == key) return m;
    i = (i + 1) & t->merge_mask;
  }
}

static int tok_heap_less(const tok_heap_item *a, const tok_heap_item *b) {
  return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void tok_heap_push(tok_heap_item *h, size_t *n, tok_heap_item x) {
  size_t i = (*n)++;
  h[i] = x;
  while (i > 0 && tok_heap_less(&h[i], &h[(i - 1) / 2])) {
    tok_heap_item tmp = h[i];
    h[i] = h[(i - 1) / 2];
    h[(i - 1) / 2] = tmp;
    i = (i - 1) / 2;
  }
}

static tok_heap_item tok_heap_pop(tok_heap_item *h, size_t *n) {
  tok_heap_item top = h[0];
  h[0] = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < *n && tok_heap_less(&h[l], &h[m])) m = l;
    if (r < *n && tok_heap_less(&h[r], &h[m])) m = r;
    if (m == i) break;
    tok_heap_item tmp = h[i];
    h[i] = h[m];
    h[m] = tmp;
    i = m;
  }
  return top;
}

/* GPT-2's bytes_to_unicode: the printable Latin-1 bytes are themselves, the others 256 + n. */
static uint32_t tok_byte_char(int b) {
  if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
  uint32_t n = 0;
  for (int x = 0; x < b; x++)
    if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
  return 256 + n;
}

/* tok_words: a pre-token as HF's ByteLevel pre-tokenizer shows it (each byte as its character). */
static void tok_words_append_mapped(tok_state *s, const unsigned char *w, size_t n) {
  char mapped[8];
  for (size_t i = 0; i < n && !s->nomem; i++) {
    size_t k = utf8_encode(tok_byte_char(w[i]), mapped);
    if (i == 0) {
      tok_text_append(s, mapped, k);
      continue;
    }
    tok_scratch *sc = s->sc;
    if (grow(&sc->text, &sc->text_cap, sc->text_len + k + 1, 1)) {
      s->nomem = 1;
      s->full = 1;
      return;
    }
    memcpy(sc->text + sc->text_len, mapped, k);
    sc->text_len += k;
    sc->text[sc->text_len] = '\0';
  }
}

/* The ids of pre-token w[0, n) (n > 0) by merging its bytes' symbols, lowest rank first: into
 * sc->word_ids, returns their count, or -1 when out of memory. */
static int tok_bpe_merge(const tok *t, tok_scratch *sc, const unsigned char *w, size_t n) {
  if (t->ignore_merges) {
    /* the whole word as one token, when the vocabulary has its byte-level spelling */
    char spelled[4 * 64];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 <= sizeof spelled; i++) {
      int32_t id = t->byte_id[w[i]];
      if (id < 0) break;
      memcpy(spelled + k, t->arena + t->offset[id], t->length[id]);
      k += t->length[id];
      if (i == n - 1) {
        int32_t whole = tok_find(t, tok_hash_from(TOK_FNV_OFFSET, spelled, k), spelled, k, 0);
        if (whole >= 0) {
          if (grow(&sc->word_ids, &sc->word_ids_cap, 1, sizeof *sc->word_ids)) return -1;
          sc->word_ids[0] = whole;
          return 1;
        }
      }
    }
  }
  if (grow(&sc->sym, &sc->sym_cap, n, sizeof *sc->sym) ||
      grow(&sc->heap, &sc->heap_cap, 3 * n + 1, sizeof *sc->heap) || /* m - 1 pairs + 2 a merge */
      grow(&sc->word_ids, &sc->word_ids_cap, n, sizeof *sc->word_ids))
    return -1;
  tok_sym *sym = sc->sym;
  tok_heap_item *heap = sc->heap;
  int m = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = t->byte_id[w[i]];
    if (id < 0) continue; /* no unk_token: HF drops a character the vocabulary lacks */
    sym[m].id = id;
    sym[m].prev = m - 1;
    sym[m].next = -1;
    sym[m].alive = 1;
    if (m > 0) sym[m - 1].next = m;
    m++;
  }
  size_t hn = 0;
  for (int i = 0; i + 1 < m; i++) {
    const tok_merge *mg = tok_merge_find(t, sym[i].id, sym[i + 1].id);
    if (mg) tok_heap_push(heap, &hn, (tok_heap_item){mg->rank, i, mg->merged});
  }
  while (hn > 0) {
    tok_heap_item top = tok_heap_pop(heap, &hn);
    tok_sym *cur = &sym[top.pos];
    if (!cur->alive || cur->next < 0) continue;
    tok_sym *right = &sym[cur->next];
    const tok_merge *mg = tok_merge_find(t, cur->id, right->id);
    if (!mg || mg->merged != top.merged) continue; /* an expired entry */
    cur->id = top.merged;
    right->alive = 0;
    cur->next = right->next;
    if (right->next >= 0) sym[right->next].prev = top.pos;
    if (cur->prev >= 0) {
      mg = tok_merge_find(t, sym[cur->prev].id, cur->id);
      if (mg) tok_heap_push(heap, &hn, (tok_heap_item){mg->rank, cur->prev, mg->merged});
    }
    if (cur->next >= 0) {
      mg = tok_merge_find(t, cur->id, sym[cur->next].id);
      if (mg) tok_heap_push(heap, &hn, (tok_heap_item){mg->rank, top.pos, mg->merged});
    }
  }
  int count = 0;
  for (int i = m > 0 ? 0 : -1; i >= 0; i = sym[i].next) sc->word_ids[count++] = sym[i].id;
  return count;
}

/* The cached ids of w[0, n) with hash h (in *ids, *count), or 0 when not cached. */
static int tok_cache_get(const tok *t, const tok_scratch *sc, uint64_t h, const unsigned char *w, size_t n,
                         const int32_t **ids, size_t *count) {
  if (!sc->cache || sc->cache_serial != t->serial) return 0;
  for (size_t i = (size_t)h & (TOK_CACHE_SLOTS - 1);; i = (i + 1) & (TOK_CACHE_SLOTS - 1)) {
    const tok_cache_slot *e = &sc->cache[i];
    if (!e->word_len) return 0;
    if (e->hash == h && e->word_len == n && !memcmp(sc->cache_bytes + e->word_at, w, n)) {
      *ids = sc->cache_ids + e->ids_at;
      *count = e->n_ids;
      return 1;
    }
  }
}

/* Caches ids[0, count) as the ids of w[0, n) (n <= TOK_CACHE_MAX_WORD, count <= n), emptying
 * the cache first when it is full or holds another tok's words; allocates it on first use.
 * Out of memory: nothing is cached. */
static void tok_cache_put(const tok *t, tok_scratch *sc, uint64_t h, const unsigned char *w, size_t n,
                          const int32_t *ids, size_t count) {
  if (!sc->cache) {
    sc->cache = calloc(TOK_CACHE_SLOTS, sizeof *sc->cache); /* fresh zero pages: no memset */
    sc->cache_bytes = malloc(TOK_CACHE_BYTES);
    sc->cache_ids = malloc(TOK_CACHE_IDS * sizeof *sc->cache_ids);
    if (!sc->cache || !sc->cache_bytes || !sc->cache_ids) {
      free(sc->cache);
      free(sc->cache_bytes);
      free(sc->cache_ids);
      sc->cache = NULL;
      sc->cache_bytes = NULL;
      sc->cache_ids = NULL;
      return;
    }
    sc->cache_serial = t->serial; /* empty */
  }
  if (sc->cache_serial != t->serial || sc->cache_words == TOK_CACHE_WORDS ||
      sc->cache_bytes_len + n > TOK_CACHE_BYTES || sc->cache_ids_len + count > TOK_CACHE_IDS) {
    memset(sc->cache, 0, TOK_CACHE_SLOTS * sizeof *sc->cache);
    sc->cache_words = sc->cache_bytes_len = sc->cache_ids_len = 0;
    sc->cache_serial = t->serial;
  }
  size_t i = (size_t)h & (TOK_CACHE_SLOTS - 1);
  while (sc->cache[i].word_len) i = (i + 1) & (TOK_CACHE_SLOTS - 1);
  memcpy(sc->cache_bytes + sc->cache_bytes_len, w, n);
  memcpy(sc->cache_ids + sc->cache_ids_len, ids, count * sizeof *ids);
  sc->cache[i] = (tok_cache_slot){h, (uint32_t)sc->cache_bytes_len, (uint32_t)sc->cache_ids_len, (uint16_t)n,
                                  (uint16_t)count};
  sc->cache_bytes_len += n;
  sc->cache_ids_len += count;
  sc->cache_words++;
}

/* BPE of one pre-token, bytes w[0, n): pushes its ids (tok_words: appends it). */
static void tok_bpe_word(tok_state *s, const unsigned char *w, size_t n) {
  const tok *t = s->t;
  tok_scratch *sc = s->sc;
  if (!n) return;
  if (s->words_mode) {
    tok_words_append_mapped(s, w, n);
    return;
  }
  const int32_t *ids;
  size_t count;
  uint64_t h = n <= TOK_CACHE_MAX_WORD ? tok_hash_from(TOK_FNV_OFFSET, (const char *)w, n) : 0;
  if (n > TOK_CACHE_MAX_WORD || !tok_cache_get(t, sc, h, w, n, &ids, &count)) {
    int got = tok_bpe_merge(t, sc, w, n);
    if (got < 0) {
      s->nomem = 1;
      s->full = 1;
      return;
    }
    ids = sc->word_ids;
    count = (size_t)got;
    if (n <= TOK_CACHE_MAX_WORD) tok_cache_put(t, sc, h, w, n, ids, count);
  }
  for (size_t i = 0; i < count && !s->full; i++) {
    if (tok_push(s, ids[i]) < 0) break;
    tok_check_limit(s);
  }
}

static int tok_is_letter(uint32_t c) {
  if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int tok_is_number(uint32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

/* 0 whitespace, 1 letter, 2 number, 3 anything else (the regex's classes) */
static int tok_bpe_class(uint32_t c) {
  if (tok_is_whitespace(c)) return 0;
  if (tok_is_letter(c)) return 1;
  if (tok_is_number(c)) return 2;
  return 3;
}

/* ByteLevel pre-tokenization + BPE of one segment between added tokens: text (bytes, valid UTF-8
 * after invalid sequences became U+FFFD) of n code points cps[], byte offsets at[] (n + 1). */
static void tok_bpe_segment(tok_state *s, const unsigned char *text, const uint32_t *cps, const size_t *at,
                            size_t n) {
  size_t i = 0;
  if (s->t->add_prefix_space && n > 0 && cps[0] != ' ') {
    /* HF prepends ' ' to a segment that does not start with one: the first pre-token is that
     * space with what the regex joins to it (" ?X+" for a letter, number or other run; a space
     * then a whitespace run as \s+(?!\S), so the run's last character stays out unless it
     * ends the segment; never a contraction, which would have to start at the space). */
    int cls = tok_bpe_class(cps[0]);
    size_t j = 1;
    while (j < n && tok_bpe_class(cps[j]) == cls) j++;
    if (cls == 0 && j < n) j--;
    tok_scratch *sc = s->sc;
    const size_t len = at[j] - at[0];
    if (grow(&sc->bpe_word, &sc->bpe_word_cap, len + 1, 1)) {
      s->nomem = 1;
      s->full = 1;
      return;
    }
    sc->bpe_word[0] = ' ';
    memcpy(sc->bpe_word + 1, text + at[0], len);
    tok_bpe_word(s, sc->bpe_word, len + 1);
    i = j;
  }
  while (i < n && !s->full) {
    uint32_t c = cps[i];
    size_t j = i;
    if (c == '\'' && i + 1 < n) {
      uint32_t a = cps[i + 1], b = i + 2 < n ? cps[i + 2] : 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd')
        j = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        j = i + 3;
    }
    if (j == i) {
      size_t k = (c == ' ' && i + 1 < n) ? i + 1 : i; /* " ?" then one class, greedily */
      int cls = tok_bpe_class(cps[k]);
      if (cls != 0) {
        j = k + 1;
        while (j < n && tok_bpe_class(cps[j]) == cls) j++;
      } else {
        size_t e = i; /* \s+(?!\S) | \s+ */
        while (e < n && tok_bpe_class(cps[e]) == 0) e++;
        j = e == n || e - i == 1 ? e : e - 1;
      }
    }
    tok_bpe_word(s, text + at[i], at[j] - at[i]);
    i = j;
  }
}

/* The input text[0, n) as HF gets it (invalid UTF-8 as U+FFFD), split at added tokens. */
static void tok_run_bpe(tok_state *s, const unsigned char *p, size_t n) {
  const tok *t = s->t;
  tok_scratch *sc = s->sc;
  /* one pass: the cleaned bytes, their code points and offsets (bytes <= 3 per input byte) */
  if (grow(&sc->bpe_text, &sc->bpe_text_cap, 3 * n + 2, 1) ||
      grow(&sc->bpe_cps, &sc->bpe_cps_cap, n + 2, sizeof *sc->bpe_cps) ||
      grow(&sc->bpe_at, &sc->bpe_at_cap, n + 2, sizeof *sc->bpe_at) ||
      grow(&sc->bpe_added, &sc->bpe_added_cap, n + 2, sizeof *sc->bpe_added)) {
    s->nomem = 1;
    s->full = 1;
    return;
  }
  unsigned char *text = sc->bpe_text;
  uint32_t *cps = sc->bpe_cps;
  size_t *at = sc->bpe_at;
  int32_t *added = sc->bpe_added; /* added token starting at code point i, -1 */
  size_t nb = 0, nc = 0;
  for (size_t i = 0; i < n;) {
    uint32_t c;
    /* an added token on the raw bytes (leftmost-longest), as HF's AddedVocabulary */
    int32_t id = -1;
    size_t m = t->added_first[p[i]] ? tok_match_added(t, p + i, n - i, &id) : 0;
    if (m) {
      at[nc] = nb;
      cps[nc] = 0;
      added[nc] = id;
      nc++;
      i += m;
      continue;
    }
    if (p[i] < 0x80) { /* ASCII: itself */
      at[nc] = nb;
      cps[nc] = p[i];
      added[nc] = -1;
      nc++;
      text[nb++] = p[i++];
      continue;
    }
    i += utf8_decode((const char *)p + i, n - i, &c);
    if (c == UTF8_INVALID) c = UTF8_REPLACEMENT;
    at[nc] = nb;
    cps[nc] = c;
    added[nc] = -1;
    nc++;
    nb += utf8_encode(c, (char *)text + nb);
  }
  at[nc] = nb;
  size_t seg = 0;
  for (size_t i = 0; i <= nc && !s->full; i++) {
    if (i < nc && added[i] < 0) continue;
    size_t end = i;
    const tok_added *a = NULL;
    for (int k = 0; i < nc && k < t->n_added; k++)
      if (t->added[k].id == added[i]) a = &t->added[k];
    if (a && a->lstrip)
      while (end > seg && tok_is_whitespace(cps[end - 1])) end--;
    if (end > seg) tok_bpe_segment(s, text, cps + seg, at + seg, end - seg);
    if (i == nc || s->full) break;
    if (s->words_mode)
      tok_text_append(s, t->arena + t->offset[added[i]], t->length[added[i]]);
    else
      tok_push(s, added[i]);
    tok_check_limit(s);
    seg = i + 1;
    if (a && a->rstrip)
      while (seg < nc && added[seg] < 0 && tok_is_whitespace(cps[seg])) seg++;
  }
}

static const char *tok_json_type(const cJSON *obj) {
  const cJSON *type = obj ? cJSON_GetObjectItemCaseSensitive(obj, "type") : NULL;
  return cJSON_IsString(type) ? type->valuestring : "null";
}

/* A tokenizer.json whose model is BPE: byte-level BPE as RoBERTa's (see tok_run_bpe); every
 * other setting refused, naming it. */
static int tok_open_bpe(const char *path, const cJSON *root, tok **out) {
  int rc = 0;
  tok *t = NULL;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
  const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
  const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  const cJSON *item;
  *out = NULL;
  if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
    return err_set(ERR_FORMAT, "%s: a BPE model needs model.vocab and model.merges", path);
  if (norm && !cJSON_IsNull(norm))
    return err_set(ERR_FORMAT, "%s: a BPE tokenizer with normalizer %s is not supported (byte-level BPE has none)",
                   path, tok_json_type(norm));
  if (strcmp(tok_json_type(pre), "ByteLevel") != 0 || !tok_json_bool(pre, "use_regex", 1))
    return err_set(ERR_FORMAT, "%s: pre_tokenizer %s%s is not supported (ByteLevel with use_regex)", path,
                   tok_json_type(pre), strcmp(tok_json_type(pre), "ByteLevel") ? "" : " without use_regex");
  if (strcmp(tok_json_type(post), "RobertaProcessing") != 0)
    return err_set(ERR_FORMAT, "%s: post_processor %s is not supported (RobertaProcessing: <s> text </s>)", path,
                   tok_json_type(post));
  const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
  const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
  const cJSON *suffix = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
  if ((dropout && !cJSON_IsNull(dropout)) || (cJSON_IsString(prefix) && prefix->valuestring[0]) ||
      (cJSON_IsString(suffix) && suffix->valuestring[0]) || tok_json_bool(model, "byte_fallback", 0))
    return err_set(ERR_FORMAT, "%s: BPE dropout, continuing_subword_prefix, end_of_word_suffix and byte_fallback "
                   "are not supported", path);
  size_t arena = 0;
  int max_id = -1;
  if ((rc = tok_json_vocab(path, vocab, added, &t, &arena, &max_id)) < 0) goto fail;
  static atomic_uint_fast64_t serials;
  t->bpe = 1;
  t->serial = (uint64_t)atomic_fetch_add(&serials, 1) + 1;
  t->ignore_merges = tok_json_bool(model, "ignore_merges", 0);
  t->add_prefix_space = tok_json_bool(pre, "add_prefix_space", 0);
  if ((rc = tok_build_index(t)) < 0) goto fail;
  for (int b = 0; b < 256; b++) {
    char ch[4];
    size_t n = utf8_encode(tok_byte_char(b), ch);
    t->byte_id[b] = tok_find(t, tok_hash_from(TOK_FNV_OFFSET, ch, n), ch, n, 0);
  }
  size_t n_merges = (size_t)cJSON_GetArraySize(merges), cap = 16;
  while (cap < 2 * n_merges) cap *= 2;
  t->merges = malloc(cap * sizeof *t->merges);
  if (!t->merges) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  for (size_t i = 0; i < cap; i++) t->merges[i] = (tok_merge){0, 0, -1};
  t->merge_mask = cap - 1;
  int32_t rank = 0;
  cJSON_ArrayForEach(item, merges) {
    char left[512], right[512];
    int ok = 0;
    if (cJSON_IsString(item)) {
      const char *sp = strchr(item->valuestring, ' ');
      ok = sp && (size_t)(sp - item->valuestring) < sizeof left && strlen(sp + 1) < sizeof right &&
           !strchr(sp + 1, ' ');
      if (ok) {
        snprintf(left, sizeof left, "%.*s", (int)(sp - item->valuestring), item->valuestring);
        snprintf(right, sizeof right, "%s", sp + 1);
      }
    } else if (cJSON_IsArray(item) && cJSON_GetArraySize(item) == 2 && cJSON_IsString(cJSON_GetArrayItem(item, 0)) &&
               cJSON_IsString(cJSON_GetArrayItem(item, 1))) {
      const char *a = cJSON_GetArrayItem(item, 0)->valuestring, *b = cJSON_GetArrayItem(item, 1)->valuestring;
      ok = strlen(a) < sizeof left && strlen(b) < sizeof right;
      if (ok) {
        snprintf(left, sizeof left, "%s", a);
        snprintf(right, sizeof right, "%s", b);
      }
    }
    char both[1024];
    size_t nl = ok ? strlen(left) : 0, nr = ok ? strlen(right) : 0;
    if (ok) {
      memcpy(both, left, nl);
      memcpy(both + nl, right, nr);
    }
    int32_t a = ok ? tok_find(t, tok_hash_from(TOK_FNV_OFFSET, left, nl), left, nl, 0) : -1;
    int32_t b = ok ? tok_find(t, tok_hash_from(TOK_FNV_OFFSET, right, nr), right, nr, 0) : -1;
    int32_t ab = ok ? tok_find(t, tok_hash_from(TOK_FNV_OFFSET, both, nl + nr), both, nl + nr, 0) : -1;
    if (a < 0 || b < 0 || ab < 0) {
      rc = err_set(ERR_FORMAT, "%s: merge %d is not a pair of vocabulary tokens whose concatenation is one", path,
                   (int)rank);
      goto fail;
    }
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & t->merge_mask;
    while (t->merges[i].merged >= 0 && t->merges[i].key != key) i = (i + 1) & t->merge_mask;
    t->merges[i] = (tok_merge){key, rank, ab}; /* a repeated pair: the later one, as HF's map */
    rank++;
  }
  cJSON_ArrayForEach(item, added) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
    if (tok_json_bool(item, "single_word", 0)) {
      rc = err_set(ERR_FORMAT, "%s: added token '%s' uses single_word, which is not supported", path,
                   content->valuestring);
      goto fail;
    }
    tok_json_name_added(t, content->valuestring, id->valueint, &arena);
    if ((rc = tok_add_added(t, content->valuestring, id->valueint, path)) < 0) goto fail;
    t->added[t->n_added - 1].lstrip = tok_json_bool(item, "lstrip", 0);
    t->added[t->n_added - 1].rstrip = tok_json_bool(item, "rstrip", 0);
  }
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(post, "cls");
  const cJSON *sep = cJSON_GetObjectItemCaseSensitive(post, "sep");
  if (!cJSON_IsArray(cls) || !cJSON_IsNumber(cJSON_GetArrayItem(cls, 1)) || !cJSON_IsArray(sep) ||
      !cJSON_IsNumber(cJSON_GetArrayItem(sep, 1))) {
    rc = err_set(ERR_FORMAT, "%s: post_processor.cls / sep are not [token, id]", path);
    goto fail;
  }
  t->cls = cJSON_GetArrayItem(cls, 1)->valueint;
  t->sep = cJSON_GetArrayItem(sep, 1)->valueint;
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
  t->unk = cJSON_IsString(unk) ? tok_lookup(t, unk->valuestring) : -1;
  if (t->cls < 0 || t->cls > max_id || t->sep < 0 || t->sep > max_id) {
    rc = err_set(ERR_FORMAT, "%s: post_processor's cls / sep ids are outside the vocabulary", path);
    goto fail;
  }
  t->norm = (tok_normalizer){0, 0, 0, 0};
  *out = t;
  return 0;
fail:
  tok_free(t);
  return rc;
}

int tok_encode(const tok *t, const char *text, size_t len, int max_length, tok_buffer *buf) {
  tok_scratch *sc;
  SPX_ASSERT(max_length == 0 || max_length >= 2);
  buf->n = 0;
  if (tok_scratch_get(t, buf, &sc) < 0) return err_set(ERR_NOMEM, "tokenizer: out of memory");
  tok_state s = {0};
  s.t = t;
  s.buf = buf;
  s.sc = sc;
  s.limit = max_length ? (size_t)max_length - 1 : SIZE_MAX;
  tok_push(&s, t->cls);
  if (t->bpe)
    tok_run_bpe(&s, (const unsigned char *)text, len);
  else
    tok_run(&s, (const unsigned char *)text, len);
  tok_push(&s, t->sep);
  if (s.nomem) return err_set(ERR_NOMEM, "tokenizer: out of memory");
  return 0;
}

int tok_words(const tok *t, const char *text, size_t len, tok_buffer *buf, const char **words,
              size_t *words_len) {
  tok_scratch *sc;
  buf->n = 0;
  if (tok_scratch_get(t, buf, &sc) < 0) return err_set(ERR_NOMEM, "tokenizer: out of memory");
  sc->text_len = 0;
  if (!sc->text) {
    sc->text = malloc(256);
    if (!sc->text) return err_set(ERR_NOMEM, "tokenizer: out of memory");
    sc->text_cap = 256;
  }
  sc->text[0] = '\0';
  tok_state s = {0};
  s.t = t;
  s.buf = buf;
  s.sc = sc;
  s.limit = SIZE_MAX;
  s.words_mode = 1;
  if (t->bpe)
    tok_run_bpe(&s, (const unsigned char *)text, len);
  else
    tok_run(&s, (const unsigned char *)text, len);
  if (s.nomem) return err_set(ERR_NOMEM, "tokenizer: out of memory");
  *words = sc->text;
  *words_len = sc->text_len;
  return 0;
}

void tok_buffer_free(tok_buffer *buf) {
  if (!buf) return;
  tok_scratch *sc = buf->scratch;
  if (sc) {
    free(sc->word);
    free(sc->marks);
    free(sc->ccc);
    free(sc->hashes);
    free(sc->ends);
    free(sc->text);
    free(sc->bpe_text);
    free(sc->bpe_cps);
    free(sc->bpe_at);
    free(sc->bpe_added);
    free(sc->bpe_word);
    free(sc->sym);
    free(sc->heap);
    free(sc->word_ids);
    free(sc->cache);
    free(sc->cache_bytes);
    free(sc->cache_ids);
    free(sc);
  }
  free(buf->ids);
  buf->ids = NULL;
  buf->scratch = NULL;
  buf->n = buf->cap = 0;
}
