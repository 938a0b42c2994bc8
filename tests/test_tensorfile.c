/* test_tensorfile: safetensors and torch zip reading, good and adversarial.
 *
 * Good: the committed fixtures (scripts/gen_model_fixtures.py) open and convert; F16 widening is
 * checked exhaustively against ldexp. Adversarial (generated here, in a temp dir, from the good
 * fixtures): truncations at many lengths, safetensors headers whose offsets/lengths/dtypes lie,
 * zip central directories that lie, pickles with foreign globals/opcodes (committed in
 * tests/fixtures/models/evil/), and byte-flip sweeps over headers and the pickle. Every bad file
 * must give an error whose message names the file, and nothing may crash (run it under
 * -DSPLADEX_SANITIZE=ON too). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "check.h"
#include "err.h"
#include "model.h"
#include "tensorfile.h"

static char source_dir[400] = ".";
static char temp_dir[64];
static int opened_ok, refused;

static unsigned char *read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  unsigned char *data = malloc((size_t)n + 1);
  if (fread(data, 1, (size_t)n, f) != (size_t)n) n = 0;
  fclose(f);
  *size = (size_t)n;
  return data;
}

static void write_all(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size) fprintf(stderr, "cannot write %s\n", path);
  if (f) fclose(f);
}

static void fixture_path(char *out, size_t cap, const char *rel) {
  snprintf(out, cap, "%s/tests/fixtures/models/%s", source_dir, rel);
}

/* Opens path, expecting failure with a message naming path (and containing fragment). */
static void expect_refused(const char *path, const char *fragment) {
  tensor_file *f = (tensor_file *)1;
  err_clear();
  int rc = tf_open(path, &f);
  const char *msg = err_msg();
  int ok = rc < 0 && f == NULL && strstr(msg, path) != NULL && (!fragment || strstr(msg, fragment) != NULL);
  if (!ok) fprintf(stderr, "tf_open(%s): rc %d, message '%s' (wanted '%s')\n", path, rc, msg, fragment ? fragment : "");
  CHECK(ok);
  if (rc == 0) tf_close(f);
  refused++;
}

/* Opens path; either outcome is fine, but an error must name the file, and a success must
 * hand out tensors whose bytes can all be read (ASan checks the reads). */
static void open_any(const char *path) {
  tensor_file *f = NULL;
  err_clear();
  int rc = tf_open(path, &f);
  if (rc < 0) {
    if (!strstr(err_msg(), path)) fprintf(stderr, "tf_open(%s): message without the file: '%s'\n", path, err_msg());
    CHECK(strstr(err_msg(), path) != NULL);
    CHECK(f == NULL);
    refused++;
    return;
  }
  opened_ok++;
  unsigned sum = 0;
  for (size_t i = 0; i < tf_count(f); i++) {
    const tensor_ref *t = tf_at(f, i);
    const unsigned char *p = t->data;
    for (size_t b = 0; b < t->nbytes; b++) sum += p[b];
    CHECK(strlen(t->name) < 100000);
  }
  (void)sum;
  tf_close(f);
}

/* ---------------------------------------------------------------- good ---- */

static void good_files(void) {
  char path[600];
  tensor_file *f = NULL;
  fixture_path(path, sizeof path, "distilbert-st/model.safetensors");
  CHECK(tf_open(path, &f) == 0);
  CHECK(tf_count(f) >= 40);
  const tensor_ref *t = tf_find(f, "distilbert.embeddings.word_embeddings.weight");
  CHECK(t && t->dtype == TF_F32 && t->ndim == 2 && t->shape[0] == 1000 && t->shape[1] == 32);
  CHECK(tf_find(f, "no.such.tensor") == NULL);
  CHECK(tf_at(f, tf_count(f)) == NULL);
  if (t) {
    float *buffer = malloc(1000 * 32 * sizeof(float));
    CHECK(tf_to_f32(t, buffer, 1000 * 32) == 0);
    CHECK(tf_to_f32(t, buffer, 1000 * 31) == ERR_SHAPE);
    free(buffer);
  }
  tf_close(f);
  tf_close(NULL);

  const char *zips[] = {"evil/good.bin", "evil/good-deflated.bin"};
  for (int z = 0; z < 2; z++) {
    fixture_path(path, sizeof path, zips[z]);
    f = NULL;
    int rc = tf_open(path, &f);
    if (rc) fprintf(stderr, "%s\n", err_msg());
    CHECK(rc == 0);
    CHECK(tf_count(f) == 1);
    t = tf_find(f, "w");
    CHECK(t && t->dtype == TF_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->nbytes == 24);
    float w[6] = {0};
    if (t) CHECK(tf_to_f32(t, w, 6) == 0);
    for (int i = 0; i < 6; i++) CHECK(w[i] == (float)i);
    tf_close(f);
  }

  /* a real torch.save: shared storage, a view at an offset, F16, BF16, a 0-d scalar, int64 */
  fixture_path(path, sizeof path, "evil/torch-small.bin");
  f = NULL;
  int rc = tf_open(path, &f);
  if (rc) fprintf(stderr, "%s\n", err_msg());
  CHECK(rc == 0 && tf_count(f) == 7);
  if (f) {
    const tensor_ref *a = tf_find(f, "a"), *again = tf_find(f, "a_again"), *row = tf_find(f, "row");
    const tensor_ref *h = tf_find(f, "h"), *b = tf_find(f, "b"), *scalar = tf_find(f, "scalar"), *ids = tf_find(f, "ids");
    float v[12];
    CHECK(a && again && a->data == again->data && a->ndim == 2 && a->shape[0] == 3 && a->shape[1] == 4);
    CHECK(row && row->ndim == 1 && row->shape[0] == 4 && tf_to_f32(row, v, 4) == 0 && v[0] == 4 && v[3] == 7);
    CHECK(h && h->dtype == TF_F16 && tf_to_f32(h, v, 3) == 0 && v[0] == 1.5f && v[1] == -2.0f && v[2] == 65504.0f);
    CHECK(b && b->dtype == TF_BF16 && tf_to_f32(b, v, 2) == 0 && v[0] == 1.0f && v[1] == -0.5f);
    CHECK(scalar && scalar->ndim == 0 && tf_to_f32(scalar, v, 1) == 0 && v[0] == 3.25f);
    CHECK(ids && ids->dtype == TF_I64 && ids->nbytes == 24 && tf_to_f32(ids, v, 3) == ERR_FORMAT);
  }
  tf_close(f);

  fixture_path(path, sizeof path, "bert-bf16-bin/pytorch_model.bin");
  f = NULL;
  CHECK(tf_open(path, &f) == 0);
  t = tf_find(f, "bert.embeddings.LayerNorm.weight");
  CHECK(t && t->dtype == TF_BF16 && t->nbytes == 64);
  tf_close(f);
}

/* F16 -> F32 for all 65536 bit patterns, against an independent ldexp formula. */
static void half_exhaustive(void) {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    unsigned char bytes[2] = {(unsigned char)(h & 0xff), (unsigned char)(h >> 8)};
    tensor_ref t = {"h", TF_F16, 1, {1}, bytes, 2};
    float got = 0;
    CHECK(tf_to_f32(&t, &got, 1) == 0);
    int exponent = (int)(h >> 10) & 31, mantissa = (int)(h & 1023);
    double sign = (h & 0x8000) ? -1.0 : 1.0;
    if (exponent == 31) {
      if (mantissa == 0 ? !(isinf(got) && (got < 0) == (sign < 0)) : !isnan(got)) bad++;
      continue;
    }
    double want = exponent == 0 ? sign * ldexp(mantissa, -24) : sign * ldexp(1024 + mantissa, exponent - 25);
    if ((double)got != want || !signbit(got) != !signbit(want)) bad++;
  }
  CHECK(bad == 0);
  unsigned char bf[2] = {0x80, 0x3f}; /* bf16 1.0 */
  tensor_ref t = {"b", TF_BF16, 1, {1}, bf, 2};
  float one = 0;
  CHECK(tf_to_f32(&t, &one, 1) == 0 && one == 1.0f);
  tensor_ref i64 = {"i", TF_I64, 1, {1}, bf, 8};
  CHECK(tf_to_f32(&i64, &one, 1) == ERR_FORMAT && strstr(err_msg(), "'i'") && strstr(err_msg(), "I64"));
}

/* ---------------------------------------------------------- truncation ---- */

static void truncations(const char *rel) {
  char path[600], cut[128];
  fixture_path(path, sizeof path, rel);
  size_t size = 0;
  unsigned char *data = read_all(path, &size);
  if (!data) {
    CHECK(0);
    return;
  }
  snprintf(cut, sizeof cut, "%s/truncated", temp_dir);
  size_t step = size / 150 + 1;
  for (size_t len = 0; len < size; len += (len < 300 ? 1 : step)) {
    write_all(cut, data, len);
    expect_refused(cut, NULL);
  }
  write_all(cut, data, size - 1);
  expect_refused(cut, NULL);
  write_all(cut, data, size);
  open_any(cut);
  free(data);
}

/* ---------------------------------------------------- safetensors lies ---- */

static void st_write(const char *path, const char *header, uint64_t claimed_len, const void *block, size_t block_len) {
  size_t hl = strlen(header);
  unsigned char *buffer = malloc(8 + hl + block_len);
  for (int i = 0; i < 8; i++) buffer[i] = (unsigned char)(claimed_len >> (8 * i));
  memcpy(buffer + 8, header, hl);
  if (block_len) memcpy(buffer + 8 + hl, block, block_len);
  write_all(path, buffer, 8 + hl + block_len);
  free(buffer);
}

static void st_case(const char *header, const char *fragment) {
  char path[128];
  float block[4] = {1, 2, 3, 4};
  snprintf(path, sizeof path, "%s/lie.safetensors", temp_dir);
  st_write(path, header, strlen(header), block, sizeof block);
  expect_refused(path, fragment);
}

static void safetensors_lies(void) {
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", "outside the data block");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", "overlap");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-4,4]}}", "data_offsets must be");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e30]}}", "data_offsets must be");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18446744073709551615,18446744073709551615]}}",
          "data_offsets must be");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9007199254740000,9007199254740008]}}",
          "outside the data block");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", "outside the data block");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "data_offsets must be");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", "need 12");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,16]}}",
          "need more than");
  st_case("{\"a\":{\"dtype\":\"F16\",\"shape\":[4611686018427387904],\"data_offsets\":[0,16]}}", "shape[0]");
  st_case("{\"a\":{\"dtype\":\"F16\",\"shape\":[4503599627370496,4503599627370496],\"data_offsets\":[0,16]}}", "need more than");
  st_case("{\"a\":{\"dtype\":\"Q7\",\"shape\":[4],\"data_offsets\":[0,16]}}", "unknown dtype");
  st_case("{\"a\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,16]}}", "needs string dtype");
  st_case("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", "needs string dtype");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", "shape[0]");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", "shape[0]");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}", "dimensions");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]}}", "appears twice");
  st_case("{\"a\":5}", "not an object");
  st_case("{\"a\":", "not a valid JSON");
  st_case("[1,2,3]", "not a valid JSON object");
  st_case("{} xyz", "trailing");
  st_case("{", "implausible header length 1");
  st_case("{}}", "trailing");
  st_case("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}", "not a valid JSON");
  st_case("\"x\"", "not a valid JSON object");

  char path[128];
  float block[4] = {1, 2, 3, 4};
  snprintf(path, sizeof path, "%s/lie.safetensors", temp_dir);
  const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
  st_write(path, ok, 1000, block, sizeof block); /* header length beyond the file */
  expect_refused(path, "exceeds the file");
  st_write(path, ok, (uint64_t)1 << 63, block, sizeof block);
  expect_refused(path, "exceeds the file");
  st_write(path, ok, 0, block, sizeof block);
  expect_refused(path, "implausible header length");
  st_write(path, ok, strlen(ok) - 1, block, sizeof block); /* cuts the closing brace */
  expect_refused(path, NULL);
  st_write(path, "", 0, NULL, 0);
  expect_refused(path, "implausible header length 0");
  write_all(path, "", 0);
  expect_refused(path, "too short");
  write_all(path, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15); /* torch < 1.6 */
  expect_refused(path, "legacy");
  expect_refused(temp_dir, "not a regular file");

  /* Valid edge cases: metadata only; zero-size tensor; padded header; F64/I64 kept but not convertible. */
  tensor_file *f = NULL;
  st_write(path, "{\"__metadata__\":{\"format\":\"pt\"}}  ", strlen("{\"__metadata__\":{\"format\":\"pt\"}}  "), NULL, 0);
  CHECK(tf_open(path, &f) == 0 && tf_count(f) == 0);
  tf_close(f);
  const char *mixed = "{\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                      "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]},"
                      "\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[16,16]}}";
  st_write(path, mixed, strlen(mixed), block, sizeof block);
  f = NULL;
  CHECK(tf_open(path, &f) == 0 && tf_count(f) == 3);
  if (f) {
    float out[2];
    const tensor_ref *d = tf_find(f, "d"), *i = tf_find(f, "i"), *z = tf_find(f, "z");
    CHECK(d && d->dtype == TF_OTHER && tf_to_f32(d, out, 1) == ERR_FORMAT && strstr(err_msg(), "'d'"));
    CHECK(i && i->dtype == TF_I64 && tf_to_f32(i, out, 1) == ERR_FORMAT && strstr(err_msg(), "I64"));
    CHECK(z && z->nbytes == 0 && tf_to_f32(z, out, 0) == 0);
  }
  tf_close(f);
}

/* A wrong dtype reaches model_load: the word embeddings relabelled I32 (same size, offsets stay valid). */
static void wrong_dtype_model(void) {
  char src[600], dir[128], path[256];
  snprintf(dir, sizeof dir, "%s/wrong-dtype", temp_dir);
  mkdir(dir, 0700);
  fixture_path(src, sizeof src, "distilbert-st/config.json");
  size_t size = 0;
  unsigned char *config = read_all(src, &size);
  snprintf(path, sizeof path, "%s/config.json", dir);
  write_all(path, config, size);
  free(config);
  fixture_path(src, sizeof src, "distilbert-st/model.safetensors");
  unsigned char *data = read_all(src, &size);
  const char *key = "\"distilbert.embeddings.word_embeddings.weight\":{\"dtype\":\"F32\"";
  unsigned char *at = NULL;
  for (size_t i = 8; i + strlen(key) < size && i < 100000; i++)
    if (memcmp(data + i, key, strlen(key)) == 0) at = data + i;
  CHECK(at != NULL);
  if (at) at[strlen(key) - 4] = 'I';
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  write_all(path, data, size);
  free(data);
  model *m = (model *)1;
  int rc = model_load(dir, &m);
  CHECK(rc == ERR_FORMAT && m == NULL && strstr(err_msg(), path) &&
        strstr(err_msg(), "tensor 'distilbert.embeddings.word_embeddings.weight' has dtype I32"));
  if (rc) printf("wrong dtype: %s\n", err_msg());
}

/* ------------------------------------------------------------ zip lies ---- */

static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void wr16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }

/* Offset of the central directory record of entry name (suffix match), or 0. */
static size_t central_entry(const unsigned char *d, size_t size, const char *suffix) {
  size_t eocd = size - 22;
  size_t p = rd32(d + eocd + 16);
  size_t n = strlen(suffix);
  while (p + 46 <= eocd && rd32(d + p) == 0x02014b50u) {
    size_t name_len = d[p + 28] | d[p + 29] << 8, extra = d[p + 30] | d[p + 31] << 8, comment = d[p + 32] | d[p + 33] << 8;
    if (name_len >= n && memcmp(d + p + 46 + name_len - n, suffix, n) == 0) return p;
    p += 46 + name_len + extra + comment;
  }
  return 0;
}

static size_t entry_data(const unsigned char *d, size_t central) {
  size_t local = rd32(d + central + 42);
  return local + 30 + (d[local + 26] | d[local + 27] << 8) + (d[local + 28] | d[local + 29] << 8);
}

static void zip_case(const unsigned char *good, size_t size, void (*mutate)(unsigned char *, size_t), const char *fragment) {
  char path[128];
  unsigned char *d = malloc(size);
  memcpy(d, good, size);
  mutate(d, size);
  snprintf(path, sizeof path, "%s/lie.bin", temp_dir);
  write_all(path, d, size);
  expect_refused(path, fragment);
  free(d);
}

static void m_cd_offset(unsigned char *d, size_t size) { wr32(d + size - 22 + 16, (uint32_t)size + 100); }
static void m_cd_size(unsigned char *d, size_t size) { wr32(d + size - 22 + 12, 0xfffffff0u); }
static void m_count(unsigned char *d, size_t size) { wr16(d + size - 22 + 8, 0xfffe); wr16(d + size - 22 + 10, 0xfffe); }
static void m_zip64(unsigned char *d, size_t size) { wr32(d + size - 22 + 16, 0xffffffffu); }
static void m_eocd(unsigned char *d, size_t size) { d[size - 22] = 'X'; }
static void m_local(unsigned char *d, size_t size) { wr32(d + central_entry(d, size, "data.pkl") + 42, 0x7fffffffu); }
static void m_local_sig(unsigned char *d, size_t size) { d[rd32(d + central_entry(d, size, "data/0") + 42)] = 'Q'; }
static void m_csize(unsigned char *d, size_t size) {
  size_t c = central_entry(d, size, "data/0");
  wr32(d + c + 20, 0x7ffffff0u);
  wr32(d + c + 24, 0x7ffffff0u);
}
static void m_sizes_differ(unsigned char *d, size_t size) { wr32(d + central_entry(d, size, "data/0") + 24, 4); }
static void m_method(unsigned char *d, size_t size) { wr16(d + central_entry(d, size, "data/0") + 10, 99); }
static void m_crc(unsigned char *d, size_t size) { d[entry_data(d, central_entry(d, size, "data/0")) + 3] ^= 0x40; }
static void m_name_len(unsigned char *d, size_t size) { wr16(d + central_entry(d, size, "data.pkl") + 28, 0xfff0); }
static void m_no_pkl(unsigned char *d, size_t size) { d[central_entry(d, size, "data.pkl") + 46 + 15] = 'x'; }
static void m_encrypted(unsigned char *d, size_t size) { d[central_entry(d, size, "data.pkl") + 8] |= 1; }
static void m_deflate(unsigned char *d, size_t size) {
  size_t c = central_entry(d, size, "data/0");
  size_t at = entry_data(d, c);
  for (size_t i = 0; i < rd32(d + c + 20); i++) d[at + i] ^= 0x5a;
}
static void m_bomb(unsigned char *d, size_t size) { wr32(d + central_entry(d, size, "data/0") + 24, 0x7fffffffu); }

static void zip_lies(void) {
  char path[600];
  size_t size = 0;
  fixture_path(path, sizeof path, "evil/good.bin");
  unsigned char *good = read_all(path, &size);
  if (!good) {
    CHECK(0);
    return;
  }
  CHECK(rd32(good + size - 22) == 0x06054b50u);
  zip_case(good, size, m_cd_offset, "central directory");
  zip_case(good, size, m_cd_size, "central directory");
  zip_case(good, size, m_count, "cannot fit");
  zip_case(good, size, m_zip64, "zip64");
  zip_case(good, size, m_eocd, "end-of-central-directory");
  zip_case(good, size, m_local, "local header");
  zip_case(good, size, m_local_sig, "local header");
  zip_case(good, size, m_csize, "past the end of the file");
  zip_case(good, size, m_sizes_differ, "has sizes");
  zip_case(good, size, m_method, "compression method 99");
  zip_case(good, size, m_crc, "CRC-32");
  zip_case(good, size, m_name_len, "overruns");
  zip_case(good, size, m_no_pkl, "without a data.pkl");
  zip_case(good, size, m_encrypted, "encrypted");
  free(good);
  /* torch writes a zip64 end record too: with the classic record's fields set to 0xffff..., the
   * reader must take the zip64 one and still open the archive */
  fixture_path(path, sizeof path, "evil/torch-small.bin");
  good = read_all(path, &size);
  if (good && rd32(good + size - 22) == 0x06054b50u) {
    char out[128];
    snprintf(out, sizeof out, "%s/zip64.bin", temp_dir);
    wr16(good + size - 22 + 8, 0xffff);
    wr16(good + size - 22 + 10, 0xffff);
    wr32(good + size - 22 + 12, 0xffffffffu);
    wr32(good + size - 22 + 16, 0xffffffffu);
    write_all(out, good, size);
    tensor_file *f = NULL;
    int rc = tf_open(out, &f);
    if (rc) fprintf(stderr, "zip64: %s\n", err_msg());
    CHECK(rc == 0 && tf_count(f) == 7);
    tf_close(f);
    good[size - 22 - 20 + 8] ^= 0x10; /* the locator now points elsewhere */
    write_all(out, good, size);
    expect_refused(out, "zip64");
  }
  free(good);
  fixture_path(path, sizeof path, "evil/good-deflated.bin");
  good = read_all(path, &size);
  zip_case(good, size, m_deflate, "data/0");
  zip_case(good, size, m_bomb, "claims");
  free(good);
}

/* ------------------------------------------------------------- pickles ---- */

static void evil_pickles(void) {
  static const struct {
    const char *file, *fragment;
  } cases[] = {
      {"global-os-system.bin", "archive/data.pkl: refused global 'os.system'"},
      {"global-builtins-eval.bin", "refused global 'builtins.eval'"},
      {"global-pickled-set.bin", "refused global '__builtin__.set'"},
      {"stack-global-popen.bin", "refused global 'subprocess.Popen'"},
      {"opcode-inst.bin", "refused pickle opcode 0x69 ('i')"},
      {"noncontiguous.bin", "not contiguous"},
      {"outside-storage.bin", "outside its storage"},
      {"short-storage.bin", "claims 600 elements"},
      {"missing-storage.bin", "no entry archive/data/7"},
  };
  char path[600];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(path, sizeof path, "%s/tests/fixtures/models/evil/%s", source_dir, cases[i].file);
    expect_refused(path, cases[i].fragment);
  }
}

/* Byte flips over the first bytes of a file (headers) and, for a torch zip, over data.pkl with its
 * CRC fixed up so the unpickler itself sees the damage. */
static void flip_sweep(const char *rel, size_t limit, int pickle) {
  char path[600], out[128];
  fixture_path(path, sizeof path, rel);
  size_t size = 0;
  unsigned char *good = read_all(path, &size);
  if (!good) {
    CHECK(0);
    return;
  }
  snprintf(out, sizeof out, "%s/flip", temp_dir);
  unsigned char *d = malloc(size);
  size_t begin = 0, end = size < limit ? size : limit, central = 0, stride = 1;
  if (pickle) {
    central = central_entry(good, size, "data.pkl");
    begin = entry_data(good, central);
    end = begin + rd32(good + central + 24);
    stride = (end - begin) / 1500 + 1;
  }
  static const int values[] = {0x00, 0xff, 0x01, 0x80, 'q', 'h', ')', 'R'};
  for (size_t at = begin; at < end; at += stride) {
    for (int v = 0; v < (pickle ? 8 : 4); v++) {
      memcpy(d, good, size);
      d[at] = (unsigned char)(v == 2 ? d[at] ^ 1 : v == 3 ? d[at] ^ 0x80 : values[v]);
      if (pickle) wr32(d + central + 16, (uint32_t)crc32(crc32(0, Z_NULL, 0), d + begin, (uInt)(end - begin)));
      write_all(out, d, size);
      open_any(out);
    }
  }
  if (pickle) { /* the pickle cut short at many lengths (sizes and CRC adjusted) */
    for (size_t len = 0; len < end - begin; len += stride) {
      memcpy(d, good, size);
      wr32(d + central + 20, (uint32_t)len);
      wr32(d + central + 24, (uint32_t)len);
      wr32(d + central + 16, (uint32_t)crc32(crc32(0, Z_NULL, 0), d + begin, (uInt)len));
      write_all(out, d, size);
      expect_refused(out, NULL);
    }
  }
  free(d);
  free(good);
}

int main(void) {
  const char *env = getenv("SPLADEX_SOURCE_DIR");
  if (env && *env) snprintf(source_dir, sizeof source_dir, "%s", env);
  char probe[600];
  fixture_path(probe, sizeof probe, "evil/good.bin");
  if (access(probe, R_OK) != 0) {
    fprintf(stderr, "test_tensorfile: %s not found: run from the repository root or set SPLADEX_SOURCE_DIR\n", probe);
    return 1;
  }
  snprintf(temp_dir, sizeof temp_dir, "%s/spladex-tf-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (!mkdtemp(temp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  good_files();
  half_exhaustive();
  truncations("distilbert-st/model.safetensors");
  truncations("distilbert-f16/model.safetensors");
  truncations("distilbert-bin/pytorch_model.bin");
  truncations("evil/good.bin");
  truncations("evil/good-deflated.bin");
  safetensors_lies();
  wrong_dtype_model();
  zip_lies();
  evil_pickles();
  flip_sweep("evil/good.bin", 100000, 0);
  flip_sweep("evil/good-deflated.bin", 100000, 0);
  flip_sweep("distilbert-st/model.safetensors", 600, 0);
  flip_sweep("evil/torch-small.bin", 0, 1);
  flip_sweep("bert-bf16-bin/pytorch_model.bin", 0, 1);
  printf("adversarial files: %d refused, %d opened (flips that stay valid)\n", refused, opened_ok);

  char command[128];
  snprintf(command, sizeof command, "rm -rf '%s'", temp_dir);
  if (system(command) != 0) fprintf(stderr, "cannot remove %s\n", temp_dir);
  return check_report("test_tensorfile");
}
