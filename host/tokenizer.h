/* tokenizer: bert-base-uncased WordPiece, identical to HuggingFace BertTokenizerFast.
 *
 * Normalization (BertNormalizer): clean text (drop NUL, U+FFFD and control characters, map
 * whitespace to ' '), put spaces around CJK ideographs, lowercase, strip accents (NFD, drop Mn).
 * Pre-tokenization (BertPreTokenizer): split on whitespace and on each punctuation character.
 * Model: greedy longest-match WordPiece with "##" continuations; a word longer than 100
 * characters, or one that cannot be split, becomes [UNK].
 * Output: [CLS] pieces [SEP], truncated to max_length (the last id is always [SEP]).
 * Invalid UTF-8 is handled as documented in tokenizer.c and the README (deterministic).
 * A tok is immutable after tok_open and may be shared by threads; each thread passes its own
 * tok_buffer.
 */
#ifndef SPLADEX_TOKENIZER_H
#define SPLADEX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok tok;

/* Per-thread scratch and output of tok_encode; zero-initialize ({0}) before first use,
 * free with tok_buffer_free(). Grows as needed, never shrinks. */
typedef struct {
  int32_t *ids;   /* (n) the encoded ids */
  size_t n;
  size_t cap;
  void *scratch;  /* private */
} tok_buffer;

/* Loads the vocabulary of a model directory: DIR/vocab.txt, else DIR/tokenizer.json (also
 * looks in DIR/document_0_MLMTransformer/ and DIR/0_MLMTransformer/). Returns 0 and *out, or
 * ERR_IO / ERR_FORMAT naming the file. Free with tok_free(). */
int tok_open(const char *model_dir, tok **out);

/* Loads a vocabulary file (vocab.txt: one token per line; or a tokenizer.json). */
int tok_open_file(const char *path, tok **out);

/* Frees. tok_free(NULL) is a no-op. */
void tok_free(tok *t);

/* Encodes text[0, len) into buf->ids: [CLS] pieces [SEP], at most max_length ids
 * (max_length 0 = no truncation; max_length >= 2 otherwise). Returns 0 or ERR_NOMEM. */
int tok_encode(const tok *t, const char *text, size_t len, int max_length, tok_buffer *buf);

/* Vocabulary size, and the token string of an id (borrowed, NULL when out of range). */
int tok_vocab_size(const tok *t);
const char *tok_token(const tok *t, int32_t id);

/* The id of a token string, or -1. */
int32_t tok_lookup(const tok *t, const char *token);

/* The ids of the unknown-word token ([UNK]), [CLS] and [SEP]. */
int32_t tok_unk_id(const tok *t);
int32_t tok_cls_id(const tok *t);
int32_t tok_sep_id(const tok *t);

/* For checking against HF (spladex tokenize --words): the normalized, pre-tokenized words of
 * text[0, len) -- what WordPiece sees, before [CLS]/[SEP] and truncation -- separated by single
 * spaces; an added token such as [MASK] appears as itself, a word longer than
 * max_input_chars_per_word as [UNK]. *words is NUL-terminated and borrowed from buf (valid until
 * buf's next use). Returns 0 or ERR_NOMEM. */
int tok_words(const tok *t, const char *text, size_t len, tok_buffer *buf, const char **words,
              size_t *words_len);

/* Frees the buffer's memory. */
void tok_buffer_free(tok_buffer *buf);

#endif
