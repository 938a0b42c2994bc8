/* fuzz_config: config.json parsing through the real entry point, model_load (host/model.c).
 *
 * host/model.c parses config.json only inside model_load, so the input is written to
 * DIR/config.json in the harness's scratch directory, next to a tiny model.safetensors that this
 * file generates once: it holds every tensor of both a BERT and a DistilBERT masked-LM with
 * hidden 4, 2 heads, ffn 8, vocab 110, 8 positions, 2 token types, 1 layer (the seeds in
 * tests/fuzz/corpus/config/ describe exactly that model), so a mutated config reaches the
 * weight-mapping code: shape checks, tying, the arena. Sizes that disagree with the checkpoint
 * must give a clear error, never an allocation sized by the config alone. */
#include <stdint.h>
#include <stddef.h>

#include "fuzz_common.h"
#include "model.h"

#define FUZZ_CFG_H 4
#define FUZZ_CFG_F 8
#define FUZZ_CFG_V 110
#define FUZZ_CFG_P 8
#define FUZZ_CFG_Y 2

typedef struct {
  const char *name;
  int d0, d1; /* d1 0: a vector */
} fuzz_config_tensor;

static const fuzz_config_tensor fuzz_config_tensors[] = {
    {"bert.embeddings.word_embeddings.weight", FUZZ_CFG_V, FUZZ_CFG_H},
    {"bert.embeddings.position_embeddings.weight", FUZZ_CFG_P, FUZZ_CFG_H},
    {"bert.embeddings.token_type_embeddings.weight", FUZZ_CFG_Y, FUZZ_CFG_H},
    {"bert.embeddings.LayerNorm.weight", FUZZ_CFG_H, 0},
    {"bert.embeddings.LayerNorm.bias", FUZZ_CFG_H, 0},
    {"bert.encoder.layer.0.attention.self.query.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"bert.encoder.layer.0.attention.self.query.bias", FUZZ_CFG_H, 0},
    {"bert.encoder.layer.0.attention.self.key.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"bert.encoder.layer.0.attention.self.key.bias", FUZZ_CFG_H, 0},
    {"bert.encoder.layer.0.attention.self.value.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"bert.encoder.layer.0.attention.self.value.bias", FUZZ_CFG_H, 0},
    {"bert.encoder.layer.0.attention.output.dense.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"bert.encoder.layer.0.attention.output.dense.bias", FUZZ_CFG_H, 0},
    {"bert.encoder.layer.0.attention.output.LayerNorm.weight", FUZZ_CFG_H, 0},
    {"bert.encoder.layer.0.attention.output.LayerNorm.bias", FUZZ_CFG_H, 0},
    {"bert.encoder.layer.0.intermediate.dense.weight", FUZZ_CFG_F, FUZZ_CFG_H},
    {"bert.encoder.layer.0.intermediate.dense.bias", FUZZ_CFG_F, 0},
    {"bert.encoder.layer.0.output.dense.weight", FUZZ_CFG_H, FUZZ_CFG_F},
    {"bert.encoder.layer.0.output.dense.bias", FUZZ_CFG_H, 0},
    {"bert.encoder.layer.0.output.LayerNorm.weight", FUZZ_CFG_H, 0},
    {"bert.encoder.layer.0.output.LayerNorm.bias", FUZZ_CFG_H, 0},
    {"cls.predictions.transform.dense.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"cls.predictions.transform.dense.bias", FUZZ_CFG_H, 0},
    {"cls.predictions.transform.LayerNorm.weight", FUZZ_CFG_H, 0},
    {"cls.predictions.transform.LayerNorm.bias", FUZZ_CFG_H, 0},
    {"cls.predictions.bias", FUZZ_CFG_V, 0},
    {"distilbert.embeddings.word_embeddings.weight", FUZZ_CFG_V, FUZZ_CFG_H},
    {"distilbert.embeddings.position_embeddings.weight", FUZZ_CFG_P, FUZZ_CFG_H},
    {"distilbert.embeddings.LayerNorm.weight", FUZZ_CFG_H, 0},
    {"distilbert.embeddings.LayerNorm.bias", FUZZ_CFG_H, 0},
    {"distilbert.transformer.layer.0.attention.q_lin.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"distilbert.transformer.layer.0.attention.q_lin.bias", FUZZ_CFG_H, 0},
    {"distilbert.transformer.layer.0.attention.k_lin.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"distilbert.transformer.layer.0.attention.k_lin.bias", FUZZ_CFG_H, 0},
    {"distilbert.transformer.layer.0.attention.v_lin.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"distilbert.transformer.layer.0.attention.v_lin.bias", FUZZ_CFG_H, 0},
    {"distilbert.transformer.layer.0.attention.out_lin.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"distilbert.transformer.layer.0.attention.out_lin.bias", FUZZ_CFG_H, 0},
    {"distilbert.transformer.layer.0.sa_layer_norm.weight", FUZZ_CFG_H, 0},
    {"distilbert.transformer.layer.0.sa_layer_norm.bias", FUZZ_CFG_H, 0},
    {"distilbert.transformer.layer.0.ffn.lin1.weight", FUZZ_CFG_F, FUZZ_CFG_H},
    {"distilbert.transformer.layer.0.ffn.lin1.bias", FUZZ_CFG_F, 0},
    {"distilbert.transformer.layer.0.ffn.lin2.weight", FUZZ_CFG_H, FUZZ_CFG_F},
    {"distilbert.transformer.layer.0.ffn.lin2.bias", FUZZ_CFG_H, 0},
    {"distilbert.transformer.layer.0.output_layer_norm.weight", FUZZ_CFG_H, 0},
    {"distilbert.transformer.layer.0.output_layer_norm.bias", FUZZ_CFG_H, 0},
    {"vocab_transform.weight", FUZZ_CFG_H, FUZZ_CFG_H},
    {"vocab_transform.bias", FUZZ_CFG_H, 0},
    {"vocab_layer_norm.weight", FUZZ_CFG_H, 0},
    {"vocab_layer_norm.bias", FUZZ_CFG_H, 0},
    {"vocab_projector.bias", FUZZ_CFG_V, 0},
};

/* Writes the tiny two-architecture checkpoint to fuzz_dir()/model.safetensors (once). */
static void fuzz_config_write_weights(void) {
  static int written;
  if (written) return;
  size_t n = sizeof fuzz_config_tensors / sizeof fuzz_config_tensors[0];
  char *header = malloc(16384);
  FUZZ_REQUIRE(header);
  size_t used = 0, offset = 0;
  used += (size_t)snprintf(header + used, 16384 - used, "{");
  for (size_t i = 0; i < n; i++) {
    const fuzz_config_tensor *t = &fuzz_config_tensors[i];
    size_t bytes = 4 * (size_t)t->d0 * (size_t)(t->d1 ? t->d1 : 1);
    if (t->d1)
      used += (size_t)snprintf(header + used, 16384 - used,
                               "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                               i ? "," : "", t->name, t->d0, t->d1, offset, offset + bytes);
    else
      used += (size_t)snprintf(header + used, 16384 - used,
                               "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                               i ? "," : "", t->name, t->d0, offset, offset + bytes);
    offset += bytes;
  }
  used += (size_t)snprintf(header + used, 16384 - used, "}");
  FUZZ_REQUIRE(used < 16384);
  size_t total = 8 + used + offset;
  uint8_t *file = calloc(1, total);
  FUZZ_REQUIRE(file);
  for (int b = 0; b < 8; b++) file[b] = (uint8_t)((uint64_t)used >> (8 * b));
  memcpy(file + 8, header, used);
  float *values = (float *)malloc(offset);
  FUZZ_REQUIRE(values);
  for (size_t i = 0; i < offset / 4; i++) values[i] = (float)(i % 7) * 0.125f - 0.375f;
  memcpy(file + 8 + used, values, offset);
  fuzz_write("model.safetensors", file, total);
  free(values);
  free(file);
  free(header);
  written = 1;
}

static int fuzz_config(const uint8_t *data, size_t size) {
  fuzz_config_write_weights();
  fuzz_write("config.json", data, size);
  model *m = NULL;
  err_clear();
  int rc = model_load(fuzz_dir(), &m);
  FUZZ_REQUIRE_MESSAGE(rc);
  FUZZ_REQUIRE((rc == 0) == (m != NULL));
  if (rc == 0) {
    const model_config *c = &m->cfg;
    FUZZ_REQUIRE(c->hidden == FUZZ_CFG_H && c->vocab == FUZZ_CFG_V && c->n_layers == 1);
    FUZZ_REQUIRE(c->n_heads >= 1 && c->hidden % c->n_heads == 0);
    FUZZ_REQUIRE(c->pad_id >= 0 && c->pad_id < c->vocab && c->mask_id < c->vocab);
    FUZZ_REQUIRE(m->word_emb && m->pos_emb && m->decoder_w && m->decoder_b && m->layers);
    FUZZ_REQUIRE(m->weights_sha256[64] == '\0' && strlen(m->weights_sha256) == 64);
    size_t count = 0;
    const float *w = model_tensor(m, c->arch == MODEL_BERT ? "bert.embeddings.word_embeddings.weight"
                                                           : "distilbert.embeddings.word_embeddings.weight",
                                  &count);
    FUZZ_REQUIRE(w == m->word_emb && count == (size_t)FUZZ_CFG_V * FUZZ_CFG_H);
    volatile float sink = 0;
    for (size_t i = 0; i < m->arena_floats; i++) sink += m->arena[i];
    (void)sink;
  }
  model_free(m);
  return rc;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_config(data, size);
  return 0;
}
#endif
