/* utf8: one character of UTF-8 at a time -- decode, encode -- and a validity check.
 *
 * The one decoder of the code base (the tokenizer, the corpus's doc ids and the JSONL export's
 * check all use it). It accepts exactly the well-formed sequences of Unicode's Table 3-7: no
 * overlong forms (C0 C1, E0 80..9F, F0 80..8F), no surrogates (ED A0..BF), nothing past U+10FFFF
 * (F4 90.., F5..FF). Bytes that do not start a valid character are consumed one "maximal
 * subpart" at a time (Unicode 15 section 3.9, U+FFFD substitution of maximal subparts): the
 * longest prefix of a well-formed sequence that is there, or else one byte. Replacing each such
 * subpart by U+FFFD is Python's bytes.decode("utf-8", errors="replace") and what HF tokenizers
 * sees; "ab\xE2\x82z" decodes as a b (invalid, 2 bytes) z, "\xED\xA0\x80" as three invalid
 * bytes, and no valid character is ever swallowed by an invalid one before it.
 */
#ifndef SPLADEX_UTF8_H
#define SPLADEX_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* *cp for bytes that do not start a valid character (not a code point: above U+10FFFF). */
#define UTF8_INVALID 0xFFFFFFFFu

/* U+FFFD REPLACEMENT CHARACTER, what errors="replace" writes for an invalid subpart. */
#define UTF8_REPLACEMENT 0xFFFDu

/* The bytes utf8_encode writes at most. */
#define UTF8_MAX_BYTES 4

/* Decodes the character at s[0, n), n >= 1 (U+0000 included: a NUL byte is the character 0).
 * Returns the bytes it takes, 1 to 4, with its code point in *cp. When s does not start with a
 * valid character, returns the length of the maximal invalid subpart there (1 to 3; cut short by
 * n when the sequence is truncated) and sets *cp to UTF8_INVALID. */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Writes the UTF-8 form of cp (<= U+10FFFF) to out[0, UTF8_MAX_BYTES) and returns its length,
 * 1 to 4. Not checked: a surrogate is written as its 3-byte form, which utf8_decode rejects, so
 * callers replace lone surrogates first. No NUL is written. */
size_t utf8_encode(uint32_t cp, char *out);

/* 1 if the len bytes at s are all valid UTF-8 (utf8_decode never says UTF8_INVALID), else 0.
 * NUL bytes are valid. */
int utf8_valid(const char *s, size_t len);

#endif
