/* sha256: a small streaming SHA-256 (FIPS 180-4), for the weights hash in job.json and the
 * bit-identity checks of the model tests. No allocation; a sha256_ctx lives on the stack. */
#ifndef SPLADEX_SHA256_H
#define SPLADEX_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t state[8];
  uint64_t total_bytes;
  uint8_t block[64];
  size_t block_used;
} sha256_ctx;

/* Starts a new hash. */
void sha256_init(sha256_ctx *c);

/* Feeds n bytes (n may be 0). */
void sha256_update(sha256_ctx *c, const void *data, size_t n);

/* Finishes: writes the 32-byte digest into out. The context must be re-initialized to reuse it. */
void sha256_final(sha256_ctx *c, uint8_t out[32]);

/* Writes the 64 lowercase hex digits of a digest plus '\0' into hex (65 bytes). */
void sha256_hex(const uint8_t digest[32], char hex[65]);

/* One-shot: hex sha256 of n bytes. */
void sha256_buffer_hex(const void *data, size_t n, char hex[65]);

/* Streams the file at path through SHA-256 and writes its hex digest into hex (65 bytes).
 * Returns 0, or ERR_IO with a message naming the file. */
int sha256_file_hex(const char *path, char hex[65]);

#endif
