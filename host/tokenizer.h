/* tokenizer: BERT WordPiece (uncased, cased, multilingual), identical to HuggingFace
 * BertTokenizerFast.
 *
 * Normalization (BertNormalizer), each step as the model's files say (tok_normalizer): clean
 * text (drop NUL, U+FFFD and control characters, map whitespace to ' '), put spaces around CJK
 * ideographs, strip accents (NFD, drop Mn), lowercase.
 * Pre-tokenization (BertPreTokenizer): split on whitespace and on each punctuation character.
 * Model: greedy longest-match WordPiece with "##" continuations; a word longer than 100
 * characters, or one that cannot be split, becomes [UNK].
 * Output: [CLS] pieces [SEP], truncated to max_length (the last id is always [SEP]).
 * A tokenizer.json whose model is BPE is RoBERTa's byte-level BPE instead (tokenizers'
 * ByteLevel pre-tokenizer with GPT-2's regex and its add_prefix_space (a ' ' before each segment
 * between added tokens that does not start with one); merges by rank; added tokens with
 * lstrip / rstrip; <s> pieces </s> from its RobertaProcessing), identical to HF tokenizers.
 * Invalid UTF-8 is handled as documented in tokenizer.c and the README (deterministic).
 * A tok is immutable after tok_open and may be shared by threads; each thread passes its own
 * tok_buffer.
 */
#ifndef SPLADEX_TOKENIZER_H
#define SPLADEX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok tok;

/* BertNormalizer's settings (HF tokenizers), each 0 or 1. strip_accents is resolved: a null in
 * the files means "as lowercase", as in HF. */
typedef struct {
  int clean_text;
  int handle_chinese_chars;
  int strip_accents;
  int lowercase;
} tok_normalizer;

/* Per-thread scratch and output of tok_encode; zero-initialize ({0}) before first use,
 * free with tok_buffer_free(). Grows as needed, never shrinks. With a byte-level BPE tok it
 * also holds a cache of the words it merged (about 1.6 MB, allocated on first use; a buffer
 * may move between toks: the cache is for the last one used). */
typedef struct {
  int32_t *ids;   /* (n) the encoded ids */
  size_t n;
  size_t cap;
  void *scratch;  /* private */
} tok_buffer;

/* Loads the vocabulary of PATH: a vocab.txt or tokenizer.json file, or a directory holding one
 * (DIR/vocab.txt, else DIR/tokenizer.json; no subdirectory is searched: for a model directory,
 * cli_open_model and cli_open_tokenizer (cli.h) pass the directory model_resolve_dir picks, so
 * that the vocabulary and the weights come from the same place). Returns 0 and *out, or
 * ERR_IO / ERR_FORMAT naming the file. Free with tok_free().
 * The normalizer: tokenizer.json's "normalizer" (the file read, or a tokenizer.json beside the
 * vocab.txt read; a null normalizer normalizes nothing), else tokenizer_config.json's
 * do_lower_case / strip_accents / tokenize_chinese_chars (clean text on, as BertTokenizer),
 * else bert-base-uncased's (all on). Refused (ERR_FORMAT, naming the file and the setting):
 * a normalizer other than BertNormalizer, a pre_tokenizer other than BertPreTokenizer, and a
 * tokenizer_config.json that contradicts tokenizer.json's normalizer (its absent keys taken at
 * BertTokenizer's defaults, as transformers does, unless it names PreTrainedTokenizerFast). */
int tok_open(const char *path, tok **out);

/* Loads a vocabulary file (vocab.txt: one token per line; or a tokenizer.json). */
int tok_open_file(const char *path, tok **out);

/* Frees. tok_free(NULL) is a no-op. */
void tok_free(tok *t);

/* Encodes text[0, len) into buf->ids: [CLS] pieces [SEP], at most max_length ids
 * (max_length 0 = no truncation; max_length >= 2 otherwise). Returns 0 or ERR_NOMEM. */
int tok_encode(const tok *t, const char *text, size_t len, int max_length, tok_buffer *buf);

/* The truncation rule of an id line (`spladex encode --ids`, `expand --format ids`), the one
 * tok_encode applies to text: a line of n ids longer than max_length keeps its first
 * max_length - 1 ids and its last id (the [SEP] of a `spladex tokenize` line). ids holds the
 * line's first min(n, max_length) ids; last is its last id. When n > max_length, writes last at
 * ids[max_length - 1]. Returns the length kept, min(n, max_length) (max_length 0: no limit). */
size_t tok_truncate_ids(int32_t *ids, size_t n, int32_t last, size_t max_length);

/* Vocabulary size, and the token string of an id (borrowed, NULL when out of range). */
int tok_vocab_size(const tok *t);

/* 1 for a byte-level BPE tokenizer (RoBERTa's tokenizer.json), 0 for WordPiece. */
int tok_is_byte_level_bpe(const tok *t);
const char *tok_token(const tok *t, int32_t id);

/* The id of a token string, or -1. */
int32_t tok_lookup(const tok *t, const char *token);

/* The normalizer settings t applies. */
tok_normalizer tok_get_normalizer(const tok *t);

/* The ids of the unknown-word token ([UNK]), [CLS] and [SEP]. */
int32_t tok_unk_id(const tok *t);
int32_t tok_cls_id(const tok *t);
int32_t tok_sep_id(const tok *t);

/* For checking against HF (spladex tokenize --words): the normalized, pre-tokenized words of
 * text[0, len) -- what WordPiece sees, before [CLS]/[SEP] and truncation -- separated by single
 * spaces; an added token such as [MASK] appears as itself, a word longer than
 * max_input_chars_per_word as [UNK]; for a byte-level BPE tokenizer, the ByteLevel pre-tokens, each
 * byte as its GPT-2 character ("Ġworld"). *words is NUL-terminated and borrowed from buf (valid until
 * buf's next use). Returns 0 or ERR_NOMEM. */
int tok_words(const tok *t, const char *text, size_t len, tok_buffer *buf, const char **words,
              size_t *words_len);

/* Frees the buffer's memory. */
void tok_buffer_free(tok_buffer *buf);

#endif
