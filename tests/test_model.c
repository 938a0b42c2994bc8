/* test_model: model_load on the fixtures of scripts/gen_model_fixtures.py (DistilBERT and BERT,
 * safetensors and torch .bin, F32/F16/BF16, tied and untied decoder, gamma/beta names, the
 * sentence-transformers layout) and on models/splade-tiny: every tensor transformers loads must
 * come out bit-identical (sha256 of its float32 bytes, from expected.json). Then config and
 * weights errors: one clear message naming the file and the tensor. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "err.h"
#include "model.h"
#include "sha256.h"

static char source_dir[400] = ".";

static cJSON *read_json(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = (cap + 4096) * 2;
      text = realloc(text, cap);
    }
    size_t got = fread(text + len, 1, 4096, f);
    len += got;
    if (got < 4096) break;
  }
  fclose(f);
  text[len] = '\0';
  cJSON *root = cJSON_Parse(text);
  free(text);
  return root;
}

/* Loads dir and compares every tensor in expected (path) with model_tensor(). */
static void check_fixture(const char *dir, const char *expected_path, int expect_tied, model_arch arch) {
  model *m = NULL;
  int rc = model_load(dir, &m);
  CHECK(rc == 0);
  if (rc) {
    fprintf(stderr, "model_load(%s): %s\n", dir, err_msg());
    return;
  }
  cJSON *expected = read_json(expected_path);
  CHECK(expected != NULL);
  if (!expected) {
    fprintf(stderr, "cannot read %s\n", expected_path);
    model_free(m);
    return;
  }
  CHECK(m->cfg.arch == arch);
  CHECK(m->decoder_tied == expect_tied);
  CHECK((m->decoder_w == m->word_emb) == expect_tied);
  const cJSON *weights_sha = cJSON_GetObjectItem(expected, "weights_sha256");
  CHECK(cJSON_IsString(weights_sha) && strcmp(weights_sha->valuestring, m->weights_sha256) == 0);
  const cJSON *tensors = cJSON_GetObjectItem(expected, "tensors"), *t = NULL;
  int n = 0, matched = 0;
  cJSON_ArrayForEach(t, tensors) {
    const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
    const char *sha = cJSON_GetObjectItem(t, "sha256")->valuestring;
    size_t numel = 1, count = 0;
    const cJSON *d = NULL;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(t, "shape")) numel *= (size_t)d->valuedouble;
    n++;
    const float *p = model_tensor(m, name, &count);
    if (!p && !m->cfg.tie_embeddings && strcmp(name, "cls.predictions.bias") == 0) {
      n--; /* untied BERT: transformers keeps this bias but its forward uses decoder.bias */
      continue;
    }
    if (!p) {
      fprintf(stderr, "%s: tensor '%s' that transformers loads is not mapped\n", dir, name);
      CHECK(p != NULL);
      continue;
    }
    CHECK(count == numel);
    char hex[65];
    sha256_buffer_hex(p, count * sizeof(float), hex);
    if (strcmp(hex, sha) != 0) fprintf(stderr, "%s: tensor '%s' differs from transformers\n", dir, name);
    CHECK(strcmp(hex, sha) == 0);
    matched += strcmp(hex, sha) == 0;
  }
  /* every tensor of the model struct is one transformers has */
  int own = 4 + 16 * m->cfg.n_layers + 6 + (arch == MODEL_BERT ? 1 : 0);
  CHECK(n == own + (arch == MODEL_BERT && m->cfg.tie_embeddings)); /* + the decoder.bias alias */
  printf("%s: %d/%d tensors bit-identical to transformers (tied %d, sha256 %.12s...)\n", dir, matched, n,
         m->decoder_tied, m->weights_sha256);
  cJSON_Delete(expected);
  model_free(m);
}

static void fixture(const char *name, int tied, model_arch arch) {
  char dir[1200], expected[1300];
  snprintf(dir, sizeof dir, "%s/tests/fixtures/models/%s", source_dir, name);
  snprintf(expected, sizeof expected, "%s/expected.json", dir);
  check_fixture(dir, expected, tied, arch);
}

/* ---- error cases, built in a temp dir from the distilbert-st fixture ---- */

static char temp_dir[256];

static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  char buffer[65536];
  size_t n;
  int ok = a && b;
  while (ok && (n = fread(buffer, 1, sizeof buffer, a)) > 0) ok = fwrite(buffer, 1, n, b) == n;
  if (a) fclose(a);
  if (b) fclose(b);
  return ok ? 0 : -1;
}

/* Writes temp_dir/NAME/{config.json, weights} with config key set to value (JSON text). */
static void make_variant(const char *name, const char *source, const char *weights, const char *key,
                         const char *value_json, char *out_dir, size_t cap) {
  char path[1400], src[1400];
  snprintf(out_dir, cap, "%s/%s", temp_dir, name);
  mkdir(out_dir, 0700);
  snprintf(src, sizeof src, "%s/tests/fixtures/models/%s/config.json", source_dir, source);
  cJSON *config = read_json(src);
  CHECK(config != NULL);
  if (!config) return;
  if (key) {
    cJSON_DeleteItemFromObject(config, key);
    if (value_json) cJSON_AddItemToObject(config, key, cJSON_Parse(value_json));
  }
  char *text = cJSON_Print(config);
  snprintf(path, sizeof path, "%s/config.json", out_dir);
  FILE *f = fopen(path, "wb");
  fputs(text, f);
  fclose(f);
  free(text);
  cJSON_Delete(config);
  snprintf(src, sizeof src, "%s/tests/fixtures/models/%s/%s", source_dir, source, weights);
  snprintf(path, sizeof path, "%s/%s", out_dir, weights);
  CHECK(copy_file(src, path) == 0);
}

static void expect_error(const char *dir, int code, const char *fragment1, const char *fragment2) {
  model *m = (model *)1;
  err_clear();
  int rc = model_load(dir, &m);
  const char *msg = err_msg();
  int ok = rc == code && m == NULL && strstr(msg, fragment1) && (!fragment2 || strstr(msg, fragment2));
  if (!ok) fprintf(stderr, "model_load(%s): rc %d (want %d), message '%s'\n", dir, rc, code, msg);
  CHECK(ok);
  if (rc == 0) model_free(m);
}

static void error_cases(void) {
  char dir[1200];
  make_variant("gelu-new", "bert-untied-st", "model.safetensors", "hidden_act", "\"gelu_new\"", dir, sizeof dir);
  expect_error(dir, ERR_FORMAT, "config.json", "gelu_new");
  make_variant("relu", "distilbert-st", "model.safetensors", "activation", "\"relu\"", dir, sizeof dir);
  expect_error(dir, ERR_FORMAT, "config.json", "'relu'");
  make_variant("roberta", "distilbert-st", "model.safetensors", "model_type", "\"roberta\"", dir, sizeof dir);
  expect_error(dir, ERR_FORMAT, "config.json", "roberta");
  make_variant("no-dim", "distilbert-st", "model.safetensors", "dim", NULL, dir, sizeof dir);
  expect_error(dir, ERR_FORMAT, "config.json", "'dim'");
  make_variant("bad-heads", "distilbert-st", "model.safetensors", "n_heads", "5", dir, sizeof dir);
  expect_error(dir, ERR_FORMAT, "config.json", "heads");
  make_variant("float-layers", "distilbert-st", "model.safetensors", "n_layers", "2.5", dir, sizeof dir);
  expect_error(dir, ERR_FORMAT, "config.json", "'n_layers'");
  make_variant("seq-cls", "distilbert-st", "model.safetensors", "architectures", "[\"DistilBertForSequenceClassification\"]",
               dir, sizeof dir);
  expect_error(dir, ERR_FORMAT, "config.json", "DistilBertForSequenceClassification");
  /* the directory name says bert, config.json says distilbert: config wins */
  make_variant("bert-named-dir", "distilbert-st", "model.safetensors", NULL, NULL, dir, sizeof dir);
  {
    model *m = NULL;
    CHECK(model_load(dir, &m) == 0 && m && m->cfg.arch == MODEL_DISTILBERT);
    model_free(m);
  }
  /* mis-shaped: config says hidden_dim 128, the checkpoint has 64 */
  make_variant("ffn-128", "distilbert-st", "model.safetensors", "hidden_dim", "128", dir, sizeof dir);
  expect_error(dir, ERR_SHAPE, "model.safetensors: tensor 'distilbert.transformer.layer.0.ffn.lin1.weight' has shape [64, 32], expected [128, 32]", NULL);
  /* missing: config says 3 layers */
  make_variant("three-layers", "distilbert-bin", "pytorch_model.bin", "n_layers", "3", dir, sizeof dir);
  expect_error(dir, ERR_SHAPE, "pytorch_model.bin: tensor 'distilbert.transformer.layer.2.attention.q_lin.weight' is missing (expected shape [32, 32])", NULL);
  /* vocab mismatch on BERT .bin (gamma/beta names) */
  make_variant("bert-vocab", "bert-bin", "pytorch_model.bin", "vocab_size", "1200", dir, sizeof dir);
  expect_error(dir, ERR_SHAPE, "pytorch_model.bin: tensor 'bert.embeddings.word_embeddings.weight' has shape [1000, 32], expected [1200, 32]", NULL);
  /* untied config with the decoder left out of the checkpoint */
  make_variant("untied-missing", "bert-bin", "pytorch_model.bin", "tie_word_embeddings", "false", dir, sizeof dir);
  expect_error(dir, ERR_SHAPE, "pytorch_model.bin", "cls.predictions.decoder.weight");
  /* no weights at all, no directory */
  snprintf(dir, sizeof dir, "%s/empty", temp_dir);
  mkdir(dir, 0700);
  expect_error(dir, ERR_IO, dir, "config.json");
  char path[1400];
  snprintf(path, sizeof path, "%s/config.json", dir);
  char src[1400];
  snprintf(src, sizeof src, "%s/tests/fixtures/models/distilbert-st/config.json", source_dir);
  CHECK(copy_file(src, path) == 0);
  expect_error(dir, ERR_IO, dir, "no model.safetensors or pytorch_model.bin");
  /* a foreign pickle posing as the weights */
  make_variant("evil", "distilbert-bin", "pytorch_model.bin", NULL, NULL, dir, sizeof dir);
  snprintf(src, sizeof src, "%s/tests/fixtures/models/evil/global-os-system.bin", source_dir);
  snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
  CHECK(copy_file(src, path) == 0);
  expect_error(dir, ERR_FORMAT, "pytorch_model.bin: archive/data.pkl: refused global 'os.system'", NULL);
  /* model_resolve_dir: the sentence-transformers layout */
  char resolved[1600];
  snprintf(dir, sizeof dir, "%s/tests/fixtures/models/st-layout", source_dir);
  CHECK(model_resolve_dir(dir, resolved, sizeof resolved) == 0);
  CHECK(strstr(resolved, "st-layout/document_0_MLMTransformer") != NULL);
  CHECK(model_resolve_dir(dir, resolved, 10) == ERR_IO);
  /* its Router's document route: the MLMTransformer there and a max/relu SpladePooling */
  model *st = NULL;
  CHECK(model_load(dir, &st) == 0 && st && st->cfg.pooling == MODEL_POOL_MAX && st->cfg.activation == MODEL_ACT_RELU);
  model_free(st);
  model_free(NULL);
}

static void remove_tree(const char *dir) {
  /* temp_dir holds one level of subdirectories with plain files */
  char command[600];
  snprintf(command, sizeof command, "rm -rf '%s'", dir);
  if (strncmp(dir, "/tmp/spladex-model-", 19) == 0 && system(command) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

int main(void) {
  const char *env = getenv("SPLADEX_SOURCE_DIR");
  if (env && *env) snprintf(source_dir, sizeof source_dir, "%s", env);

  char probe[600];
  snprintf(probe, sizeof probe, "%s/tests/fixtures/models/distilbert-st/config.json", source_dir);
  if (access(probe, R_OK) != 0) {
    fprintf(stderr, "test_model: %s not found: run from the repository root or set SPLADEX_SOURCE_DIR\n", probe);
    return 1;
  }
  fixture("distilbert-st", 1, MODEL_DISTILBERT);
  fixture("distilbert-bin", 1, MODEL_DISTILBERT);
  fixture("distilbert-f16", 1, MODEL_DISTILBERT);
  fixture("distilbert-bare-f16", 1, MODEL_DISTILBERT);
  fixture("st-layout", 1, MODEL_DISTILBERT);
  fixture("bert-bin", 1, MODEL_BERT);
  fixture("bert-bf16-bin", 1, MODEL_BERT);
  fixture("bert-untied-st", 0, MODEL_BERT);

  char dir[1200], expected[1300];
  snprintf(dir, sizeof dir, "%s/models/splade-tiny", source_dir);
  snprintf(expected, sizeof expected, "%s/tests/fixtures/models/splade-tiny.expected.json", source_dir);
  if (access(dir, R_OK) == 0) {
    check_fixture(dir, expected, 1, MODEL_BERT);
    char source[1300];
    snprintf(source, sizeof source, "%s/SOURCE", dir);
    if (access(source, R_OK) == 0) { /* written by scripts/fetch_model.sh: names the model */
      model *m = NULL;
      CHECK(model_load(dir, &m) == 0);
      CHECK(m && strcmp(m->name, "rasyosef/splade-tiny") == 0);
      model_free(m);
    }
  } else {
    printf("note: %s absent (scripts/fetch_model.sh fetches it): splade-tiny not checked\n", dir);
  }

  snprintf(temp_dir, sizeof temp_dir, "/tmp/spladex-model-XXXXXX");
  if (!mkdtemp(temp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  error_cases();
  remove_tree(temp_dir);
  return check_report("test_model");
}
