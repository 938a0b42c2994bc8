/* utf8: decode, encode, validate (see utf8.h). The decoder checks the second byte against the
 * range Table 3-7 allows after each lead byte (which rules out overlongs, surrogates and code
 * points past U+10FFFF without decoding first) and any later one against 80..BF; the first byte
 * that does not fit ends the maximal subpart. */
#include "utf8.h"

size_t utf8_decode(const char *s, size_t n, uint32_t *cp) {
  const unsigned char *p = (const unsigned char *)s;
  unsigned b0 = p[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  *cp = UTF8_INVALID;
  if (b0 < 0xC2 || b0 > 0xF4) return 1; /* a continuation byte, C0/C1 (overlong), F5..FF */
  size_t need;                          /* continuation bytes after the lead */
  unsigned lo = 0x80, hi = 0xBF;        /* the range of the first of them */
  if (b0 < 0xE0) {
    need = 1;
  } else if (b0 < 0xF0) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0; /* below: overlong */
    if (b0 == 0xED) hi = 0x9F; /* above: surrogates */
  } else {
    need = 3;
    if (b0 == 0xF0) lo = 0x90; /* below: overlong */
    if (b0 == 0xF4) hi = 0x8F; /* above: past U+10FFFF */
  }
  uint32_t c = b0 & (0x3Fu >> need);
  for (size_t k = 1; k <= need; k++) {
    if (k >= n) return k; /* truncated */
    unsigned b = p[k];
    if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return k;
    c = (c << 6) | (b & 0x3F);
  }
  *cp = c;
  return need + 1;
}

size_t utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

int utf8_valid(const char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    if ((unsigned char)s[i] < 0x80) {
      i++;
      continue;
    }
    uint32_t cp;
    i += utf8_decode(s + i, len - i, &cp);
    if (cp == UTF8_INVALID) return 0;
  }
  return 1;
}
