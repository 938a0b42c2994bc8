/* model: config.json + checkpoint -> one fp32 arena of named pointers (see model.h).
 *
 * The loader walks one table of (canonical HF name, destination, expected shape) built from the
 * config, so the shapes checked, the names in messages and model_tensor() all agree. A checkpoint
 * may spell a name without the "distilbert."/"bert." prefix, and LayerNorm parameters in the
 * legacy gamma/beta form (HF renames those on load); both are accepted here. */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "sha256.h"
#include "tensorfile.h"

/* Each tensor in the arena starts on a 64-byte boundary. */
#define MODEL_ALIGN_FLOATS 16

typedef struct {
  char name[160];   /* canonical HF name, e.g. "bert.encoder.layer.0.attention.self.query.weight" */
  float **slot;     /* where the pointer into the arena goes */
  int ndim;
  int64_t shape[2];
} model_entry;

static int model_is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int model_resolve_dir(const char *dir, char *out, size_t cap) {
  /* The document encoder of an asymmetric sentence-transformers model wins over whatever
   * sits at the top level; then DIR itself; then a symmetric sentence-transformers layout. */
  static const char *const subdirs[] = {"/document_0_MLMTransformer", "", "/0_MLMTransformer"};
  char probe[4096];
  for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
    int n = snprintf(probe, sizeof probe, "%s%s/config.json", dir, subdirs[i]);
    if (n < 0 || (size_t)n >= sizeof probe) return err_set(ERR_IO, "%s: path too long", dir);
    if (!model_is_file(probe)) continue;
    n = snprintf(out, cap, "%s%s", dir, subdirs[i]);
    if (n < 0 || (size_t)n >= cap) return err_set(ERR_IO, "%s: path too long", dir);
    return 0;
  }
  return err_set(ERR_IO, "%s: no config.json there (nor in document_0_MLMTransformer/ or 0_MLMTransformer/)", dir);
}

/* Reads a whole small file into a NUL-terminated buffer the caller frees. */
static int model_read_text(const char *path, char **out) {
  int rc = 0;
  char *buffer = NULL;
  FILE *f = fopen(path, "rb");
  *out = NULL;
  if (!f) return err_set(ERR_IO, "%s: %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0) {
    rc = err_set(ERR_IO, "%s: %s", path, strerror(errno));
    goto fail;
  }
  long size = ftell(f);
  if (size < 0 || size > (16 << 20)) {
    rc = err_set(ERR_FORMAT, "%s: unreadable or larger than 16 MB", path);
    goto fail;
  }
  rewind(f);
  buffer = malloc((size_t)size + 1);
  if (!buffer) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  if (fread(buffer, 1, (size_t)size, f) != (size_t)size) {
    rc = err_set(ERR_IO, "%s: short read", path);
    goto fail;
  }
  buffer[size] = '\0';
  fclose(f);
  *out = buffer;
  return 0;
fail:
  free(buffer);
  fclose(f);
  return rc;
}

/* A required positive integer config key (at most limit). */
static int model_config_int(const char *path, const cJSON *root, const char *key, int limit, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v) return err_set(ERR_FORMAT, "%s: missing '%s'", path, key);
  /* Range first: casting a double outside int's range (1e82, NaN) to int is undefined. */
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= limit) ||
      v->valuedouble != (double)(int)v->valuedouble)
    return err_set(ERR_FORMAT, "%s: '%s' must be an integer in [1, %d]", path, key, limit);
  *out = (int)v->valuedouble;
  return 0;
}

static const char *model_config_string(const cJSON *root, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Fills m->cfg from config.json; architecture from model_type, else architectures[0]. */
static int model_parse_config(const char *path, const cJSON *root, model *m) {
  model_config *c = &m->cfg;
  const char *type = model_config_string(root, "model_type");
  const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  const char *arch0 = cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0))
                          ? cJSON_GetArrayItem(archs, 0)->valuestring
                          : NULL;
  if (type && strcmp(type, "distilbert") == 0) {
    c->arch = MODEL_DISTILBERT;
  } else if (type && strcmp(type, "bert") == 0) {
    c->arch = MODEL_BERT;
  } else if (type && (strcmp(type, "roberta") == 0 || strcmp(type, "xlm-roberta") == 0)) {
    c->arch = MODEL_ROBERTA; /* XLMRobertaForMaskedLM is RobertaForMaskedLM's code; its usual
                              * SentencePiece tokenizer is refused by tok_open */
  } else if (!type && arch0 && strcmp(arch0, "DistilBertForMaskedLM") == 0) {
    c->arch = MODEL_DISTILBERT;
  } else if (!type && arch0 && strcmp(arch0, "BertForMaskedLM") == 0) {
    c->arch = MODEL_BERT;
  } else {
    return err_set(ERR_FORMAT, "%s: unsupported architecture (model_type '%s', architectures[0] '%s'); spladex "
                   "runs model_type distilbert (DistilBertForMaskedLM), bert (BertForMaskedLM), roberta "
                   "(RobertaForMaskedLM) and xlm-roberta (XLMRobertaForMaskedLM, with a byte-level BPE tokenizer)",
                   path, type ? type : "(none)", arch0 ? arch0 : "(none)");
  }
  static const char *const heads[] = {"DistilBertForMaskedLM", "BertForMaskedLM", "RobertaForMaskedLM"};
  const char *head = type && strcmp(type, "xlm-roberta") == 0 ? "XLMRobertaForMaskedLM" : heads[c->arch];
  if (arch0 && strcmp(arch0, head) != 0)
    return err_set(ERR_FORMAT, "%s: architectures[0] is '%s'; spladex needs the masked-LM head of model_type "
                   "'%s' (%s)", path, arch0, type ? type : "?", head);
  int rc = 0;
  const char *act = NULL;
  if (c->arch == MODEL_DISTILBERT) {
    if ((rc = model_config_int(path, root, "dim", 1 << 16, &c->hidden)) ||
        (rc = model_config_int(path, root, "n_layers", 1024, &c->n_layers)) ||
        (rc = model_config_int(path, root, "n_heads", 1 << 12, &c->n_heads)) ||
        (rc = model_config_int(path, root, "hidden_dim", 1 << 18, &c->ffn)) ||
        (rc = model_config_int(path, root, "vocab_size", 1 << 24, &c->vocab)) ||
        (rc = model_config_int(path, root, "max_position_embeddings", 1 << 20, &c->max_positions)))
      return rc;
    c->type_vocab = 0;
    c->ln_eps = 1e-12f;
    act = model_config_string(root, "activation");
    if (!act) act = "gelu"; /* DistilBertConfig's default */
    if (strcmp(act, "gelu") != 0)
      return err_set(ERR_FORMAT, "%s: activation '%s' is not supported (the encoder implements erf GELU, 'gelu', only)",
                     path, act);
  } else {
    if ((rc = model_config_int(path, root, "hidden_size", 1 << 16, &c->hidden)) ||
        (rc = model_config_int(path, root, "num_hidden_layers", 1024, &c->n_layers)) ||
        (rc = model_config_int(path, root, "num_attention_heads", 1 << 12, &c->n_heads)) ||
        (rc = model_config_int(path, root, "intermediate_size", 1 << 18, &c->ffn)) ||
        (rc = model_config_int(path, root, "vocab_size", 1 << 24, &c->vocab)) ||
        (rc = model_config_int(path, root, "max_position_embeddings", 1 << 20, &c->max_positions)))
      return rc;
    if (cJSON_GetObjectItemCaseSensitive(root, "type_vocab_size")) {
      if ((rc = model_config_int(path, root, "type_vocab_size", 1 << 16, &c->type_vocab))) return rc;
    } else {
      c->type_vocab = c->arch == MODEL_ROBERTA ? 1 : 2; /* the configs' defaults */
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    if (eps && (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0) || eps->valuedouble > 1))
      return err_set(ERR_FORMAT, "%s: 'layer_norm_eps' must be a number in (0, 1]", path);
    c->ln_eps = eps ? (float)eps->valuedouble : 1e-12f;
    act = model_config_string(root, "hidden_act");
    if (!act) act = "gelu";
    if (strcmp(act, "gelu") != 0)
      return err_set(ERR_FORMAT, "%s: hidden_act '%s' is not supported (the encoder implements erf GELU, 'gelu', only)",
                     path, act);
    const char *position = model_config_string(root, "position_embedding_type");
    if (position && strcmp(position, "absolute") != 0)
      return err_set(ERR_FORMAT, "%s: position_embedding_type '%s' is not supported (only 'absolute')", path, position);
  }
  if (c->hidden % c->n_heads != 0)
    return err_set(ERR_FORMAT, "%s: hidden size %d is not a multiple of the %d attention heads", path, c->hidden,
                   c->n_heads);
  const cJSON *pad = cJSON_GetObjectItemCaseSensitive(root, "pad_token_id");
  if (pad && !cJSON_IsNull(pad) &&
      (!cJSON_IsNumber(pad) || !(pad->valuedouble >= 0 && pad->valuedouble < c->vocab) ||
       pad->valuedouble != (double)(int)pad->valuedouble))
    return err_set(ERR_FORMAT, "%s: 'pad_token_id' must be an integer in [0, %d)", path, c->vocab);
  c->pad_id = cJSON_IsNumber(pad) ? (int)pad->valuedouble : c->arch == MODEL_ROBERTA ? 1 : 0;
  if (c->arch == MODEL_ROBERTA) {
    /* HF numbers positions from padding_idx + 1 (create_position_ids_from_input_ids) */
    c->position_offset = c->pad_id + 1;
    if (c->max_positions <= c->position_offset)
      return err_set(ERR_FORMAT, "%s: max_position_embeddings %d leaves no position after padding_idx %d", path,
                     c->max_positions, c->pad_id);
    c->max_positions -= c->position_offset;
  }
  c->tie_embeddings = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings"));
  c->unk_id = 100;
  c->cls_id = 101;
  c->sep_id = 102;
  c->mask_id = 103;
  if (c->pad_id < 0 || c->pad_id >= c->vocab || c->mask_id >= c->vocab)
    return err_set(ERR_FORMAT, "%s: vocab_size %d is too small for the BERT special token ids", path, c->vocab);
  return 0;
}

/* Appends one entry; name is printf-formatted. */
static void model_add(model_entry *e, size_t *n, float **slot, int64_t d0, int64_t d1, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

#include <stdarg.h>
static void model_add(model_entry *e, size_t *n, float **slot, int64_t d0, int64_t d1, const char *fmt, ...) {
  model_entry *x = &e[(*n)++];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->name, sizeof x->name, fmt, ap);
  va_end(ap);
  x->slot = slot;
  x->ndim = d1 ? 2 : 1;
  x->shape[0] = d0;
  x->shape[1] = d1;
}

static size_t model_entry_capacity(const model_config *c) { return 16 + 16 * (size_t)c->n_layers; }

/* The table of every tensor of m (decoder_w last, when untied or asked for), canonical names. */
static size_t model_entries(model *m, model_entry *e, int with_decoder_w) {
  const model_config *c = &m->cfg;
  const int64_t H = c->hidden, F = c->ffn, V = c->vocab, P = c->max_positions, Y = c->type_vocab;
  size_t n = 0;
  if (c->arch == MODEL_DISTILBERT) {
    const char *p = "distilbert.";
    model_add(e, &n, &m->word_emb, V, H, "%sembeddings.word_embeddings.weight", p);
    model_add(e, &n, &m->pos_table, P, H, "%sembeddings.position_embeddings.weight", p);
    model_add(e, &n, &m->emb_ln_g, H, 0, "%sembeddings.LayerNorm.weight", p);
    model_add(e, &n, &m->emb_ln_b, H, 0, "%sembeddings.LayerNorm.bias", p);
    for (int i = 0; i < c->n_layers; i++) {
      model_layer *l = &m->layers[i];
      const char *a = "distilbert.transformer.layer.";
      model_add(e, &n, &l->q_w, H, H, "%s%d.attention.q_lin.weight", a, i);
      model_add(e, &n, &l->q_b, H, 0, "%s%d.attention.q_lin.bias", a, i);
      model_add(e, &n, &l->k_w, H, H, "%s%d.attention.k_lin.weight", a, i);
      model_add(e, &n, &l->k_b, H, 0, "%s%d.attention.k_lin.bias", a, i);
      model_add(e, &n, &l->v_w, H, H, "%s%d.attention.v_lin.weight", a, i);
      model_add(e, &n, &l->v_b, H, 0, "%s%d.attention.v_lin.bias", a, i);
      model_add(e, &n, &l->o_w, H, H, "%s%d.attention.out_lin.weight", a, i);
      model_add(e, &n, &l->o_b, H, 0, "%s%d.attention.out_lin.bias", a, i);
      model_add(e, &n, &l->attn_ln_g, H, 0, "%s%d.sa_layer_norm.weight", a, i);
      model_add(e, &n, &l->attn_ln_b, H, 0, "%s%d.sa_layer_norm.bias", a, i);
      model_add(e, &n, &l->ffn1_w, F, H, "%s%d.ffn.lin1.weight", a, i);
      model_add(e, &n, &l->ffn1_b, F, 0, "%s%d.ffn.lin1.bias", a, i);
      model_add(e, &n, &l->ffn2_w, H, F, "%s%d.ffn.lin2.weight", a, i);
      model_add(e, &n, &l->ffn2_b, H, 0, "%s%d.ffn.lin2.bias", a, i);
      model_add(e, &n, &l->out_ln_g, H, 0, "%s%d.output_layer_norm.weight", a, i);
      model_add(e, &n, &l->out_ln_b, H, 0, "%s%d.output_layer_norm.bias", a, i);
    }
    model_add(e, &n, &m->head_w, H, H, "vocab_transform.weight");
    model_add(e, &n, &m->head_b, H, 0, "vocab_transform.bias");
    model_add(e, &n, &m->head_ln_g, H, 0, "vocab_layer_norm.weight");
    model_add(e, &n, &m->head_ln_b, H, 0, "vocab_layer_norm.bias");
    model_add(e, &n, &m->decoder_b, V, 0, "vocab_projector.bias");
    if (with_decoder_w) model_add(e, &n, &m->decoder_w, V, H, "vocab_projector.weight");
  } else {
    const int roberta = c->arch == MODEL_ROBERTA;
    const char *p = roberta ? "roberta." : "bert.";
    model_add(e, &n, &m->word_emb, V, H, "%sembeddings.word_embeddings.weight", p);
    model_add(e, &n, &m->pos_table, P + c->position_offset, H, "%sembeddings.position_embeddings.weight", p);
    model_add(e, &n, &m->type_emb, Y, H, "%sembeddings.token_type_embeddings.weight", p);
    model_add(e, &n, &m->emb_ln_g, H, 0, "%sembeddings.LayerNorm.weight", p);
    model_add(e, &n, &m->emb_ln_b, H, 0, "%sembeddings.LayerNorm.bias", p);
    for (int i = 0; i < c->n_layers; i++) {
      model_layer *l = &m->layers[i];
      const char *a = roberta ? "roberta.encoder.layer." : "bert.encoder.layer.";
      model_add(e, &n, &l->q_w, H, H, "%s%d.attention.self.query.weight", a, i);
      model_add(e, &n, &l->q_b, H, 0, "%s%d.attention.self.query.bias", a, i);
      model_add(e, &n, &l->k_w, H, H, "%s%d.attention.self.key.weight", a, i);
      model_add(e, &n, &l->k_b, H, 0, "%s%d.attention.self.key.bias", a, i);
      model_add(e, &n, &l->v_w, H, H, "%s%d.attention.self.value.weight", a, i);
      model_add(e, &n, &l->v_b, H, 0, "%s%d.attention.self.value.bias", a, i);
      model_add(e, &n, &l->o_w, H, H, "%s%d.attention.output.dense.weight", a, i);
      model_add(e, &n, &l->o_b, H, 0, "%s%d.attention.output.dense.bias", a, i);
      model_add(e, &n, &l->attn_ln_g, H, 0, "%s%d.attention.output.LayerNorm.weight", a, i);
      model_add(e, &n, &l->attn_ln_b, H, 0, "%s%d.attention.output.LayerNorm.bias", a, i);
      model_add(e, &n, &l->ffn1_w, F, H, "%s%d.intermediate.dense.weight", a, i);
      model_add(e, &n, &l->ffn1_b, F, 0, "%s%d.intermediate.dense.bias", a, i);
      model_add(e, &n, &l->ffn2_w, H, F, "%s%d.output.dense.weight", a, i);
      model_add(e, &n, &l->ffn2_b, H, 0, "%s%d.output.dense.bias", a, i);
      model_add(e, &n, &l->out_ln_g, H, 0, "%s%d.output.LayerNorm.weight", a, i);
      model_add(e, &n, &l->out_ln_b, H, 0, "%s%d.output.LayerNorm.bias", a, i);
    }
    if (roberta) {
      model_add(e, &n, &m->head_w, H, H, "lm_head.dense.weight");
      model_add(e, &n, &m->head_b, H, 0, "lm_head.dense.bias");
      model_add(e, &n, &m->head_ln_g, H, 0, "lm_head.layer_norm.weight");
      model_add(e, &n, &m->head_ln_b, H, 0, "lm_head.layer_norm.bias");
      model_add(e, &n, &m->decoder_b, V, 0, "lm_head.bias");
      if (with_decoder_w) model_add(e, &n, &m->decoder_w, V, H, "lm_head.decoder.weight");
      return n;
    }
    model_add(e, &n, &m->head_w, H, H, "cls.predictions.transform.dense.weight");
    model_add(e, &n, &m->head_b, H, 0, "cls.predictions.transform.dense.bias");
    model_add(e, &n, &m->head_ln_g, H, 0, "cls.predictions.transform.LayerNorm.weight");
    model_add(e, &n, &m->head_ln_b, H, 0, "cls.predictions.transform.LayerNorm.bias");
    model_add(e, &n, &m->decoder_b, V, 0, c->tie_embeddings ? "cls.predictions.bias" : "cls.predictions.decoder.bias");
    if (with_decoder_w) model_add(e, &n, &m->decoder_w, V, H, "cls.predictions.decoder.weight");
  }
  return n;
}

/* Finds canonical name in f under its accepted spellings: as is, without the architecture
 * prefix, LayerNorm weight/bias as gamma/beta; BERT's decoder bias also as decoder.bias. */
static const tensor_ref *model_find(const tensor_file *f, const char *canonical) {
  char candidates[6][192];
  size_t n = 0;
  snprintf(candidates[n++], sizeof candidates[0], "%s", canonical);
  const char *dot = NULL;
  if (strncmp(canonical, "distilbert.", 11) == 0) dot = canonical + 11;
  if (strncmp(canonical, "bert.", 5) == 0) dot = canonical + 5;
  if (strncmp(canonical, "roberta.", 8) == 0) dot = canonical + 8;
  if (dot) snprintf(candidates[n++], sizeof candidates[0], "%s", dot);
  if (strcmp(canonical, "cls.predictions.bias") == 0)
    snprintf(candidates[n++], sizeof candidates[0], "cls.predictions.decoder.bias");
  if (strcmp(canonical, "cls.predictions.decoder.bias") == 0)
    snprintf(candidates[n++], sizeof candidates[0], "cls.predictions.bias");
  if (strcmp(canonical, "lm_head.bias") == 0)
    snprintf(candidates[n++], sizeof candidates[0], "lm_head.decoder.bias");
  size_t plain = n;
  if (strstr(canonical, "LayerNorm.") || strstr(canonical, "layer_norm.")) {
    for (size_t i = 0; i < plain; i++) {
      size_t len = strlen(candidates[i]);
      if (len > 7 && strcmp(candidates[i] + len - 7, ".weight") == 0) {
        memcpy(candidates[n], candidates[i], len - 7);
        memcpy(candidates[n++] + len - 7, ".gamma", 7);
      } else if (len > 5 && strcmp(candidates[i] + len - 5, ".bias") == 0) {
        memcpy(candidates[n], candidates[i], len - 5);
        memcpy(candidates[n++] + len - 5, ".beta", 6);
      }
    }
  }
  for (size_t i = 0; i < n; i++) {
    const tensor_ref *t = tf_find(f, candidates[i]);
    if (t) return t;
  }
  return NULL;
}

static void model_format_shape(char *out, size_t cap, int ndim, const int64_t *shape) {
  size_t used = 0;
  used += (size_t)snprintf(out, cap, "[");
  for (int d = 0; d < ndim && used < cap; d++)
    used += (size_t)snprintf(out + used, cap - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
  if (used < cap) snprintf(out + used, cap - used, "]");
}

/* Checks t against entry e (shape), in messages naming the weights file. */
static int model_check_shape(const char *path, const tensor_ref *t, const model_entry *e) {
  int same = t->ndim == e->ndim;
  for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
  if (same) return 0;
  char found[160], expected[64];
  model_format_shape(found, sizeof found, t->ndim, t->shape);
  model_format_shape(expected, sizeof expected, e->ndim, e->shape);
  return err_set(ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", path, t->name, found, expected);
}

static int model_missing(const char *path, const model_entry *e) {
  char expected[64];
  model_format_shape(expected, sizeof expected, e->ndim, e->shape);
  return err_set(ERR_SHAPE, "%s: tensor '%s' is missing (expected shape %s)", path, e->name, expected);
}

static const char *model_basename(const char *dir, char *buffer, size_t cap) {
  size_t len = strlen(dir);
  while (len > 1 && dir[len - 1] == '/') len--;
  size_t start = len;
  while (start > 0 && dir[start - 1] != '/') start--;
  snprintf(buffer, cap, "%.*s", (int)(len - start), dir + start);
  return buffer;
}

/* scripts/fetch_model.sh records what it fetched in DIR/SOURCE ("owner/name (where, when)"): its
 * first word names the model when config.json does not (transformers 5 no longer writes
 * _name_or_path), so a directory named after one model but holding another is not mislabelled. */
static int model_source_name(const char *dir, char *buffer, size_t cap) {
  char path[1100];
  snprintf(path, sizeof path, "%s/SOURCE", dir);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[512];
  int got = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  size_t n = got ? strcspn(line, " \t\r\n") : 0;
  if (!n) return 0;
  snprintf(buffer, cap, "%.*s", (int)n, line);
  return 1;
}

/* ---- sentence-transformers SparseEncoder directories ---- */

/* 1 if a module type string names class (its last dotted component). */
static int model_type_is(const char *type, const char *cls) {
  const char *dot = strrchr(type, '.');
  return strcmp(dot ? dot + 1 : type, cls) == 0;
}

/* Parses a small JSON file; *out is freed by the caller with cJSON_Delete. */
static int model_read_json(const char *path, cJSON **out) {
  char *text = NULL;
  int rc = model_read_text(path, &text);
  if (rc) return rc;
  *out = cJSON_Parse(text);
  free(text);
  if (!*out) return err_set(ERR_FORMAT, "%s: not valid JSON", path);
  return 0;
}

/* SpladePooling's config.json in module_dir -> c->pooling, c->activation. */
static int model_read_pooling(const char *module_dir, model_config *c) {
  char path[1200];
  cJSON *root = NULL;
  snprintf(path, sizeof path, "%s/config.json", module_dir);
  int rc = model_read_json(path, &root);
  if (rc) return rc;
  const char *pooling = model_config_string(root, "pooling_strategy");
  const char *act = model_config_string(root, "activation_function");
  const cJSON *dim = cJSON_GetObjectItemCaseSensitive(root, "embedding_dimension");
  if (!dim) dim = cJSON_GetObjectItemCaseSensitive(root, "word_embedding_dimension");
  if (!pooling || !strcmp(pooling, "max"))
    c->pooling = MODEL_POOL_MAX;
  else if (!strcmp(pooling, "sum"))
    c->pooling = MODEL_POOL_SUM;
  else
    rc = err_set(ERR_FORMAT, "%s: pooling_strategy '%s' is not supported (max or sum)", path, pooling);
  if (!rc) {
    if (!act || !strcmp(act, "relu"))
      c->activation = MODEL_ACT_RELU;
    else if (!strcmp(act, "log1p_relu"))
      c->activation = MODEL_ACT_LOG1P_RELU;
    else
      rc = err_set(ERR_FORMAT, "%s: activation_function '%s' is not supported (relu or log1p_relu)", path, act);
  }
  if (!rc && dim && !cJSON_IsNull(dim) && !(cJSON_IsNumber(dim) && dim->valuedouble == c->vocab))
    rc = err_set(ERR_FORMAT, "%s: embedding_dimension is not the vocabulary size %d", path, c->vocab);
  cJSON_Delete(root);
  return rc;
}

/* path with runs of '/' collapsed and no trailing '/' ("DIR/" + "" and "DIR//x" name DIR, DIR/x). */
static void model_path_key(const char *path, char *out, size_t cap) {
  size_t n = 0;
  for (const char *p = path; *p && n + 1 < cap; p++)
    if (!(*p == '/' && n > 0 && out[n - 1] == '/')) out[n++] = *p;
  while (n > 1 && out[n - 1] == '/') n--;
  out[n] = '\0';
}

/* Checks a route of modules (names[i], types[i], dirs[i]): exactly an MLMTransformer whose
 * directory is the encoder's (resolved) then a SpladePooling, whose config is read. */
static int model_check_route(const char *where, int n, const char *const *names, const char *const *types,
                             const char *const *dirs, const char *resolved, model_config *c) {
  for (int i = 0; i < n; i++) {
    int mlm = model_type_is(types[i], "MLMTransformer"), pool = model_type_is(types[i], "SpladePooling");
    if ((i == 0 && !mlm) || (i == 1 && !pool) || i > 1)
      return err_set(ERR_FORMAT, "%s: module '%s' (%s) is not supported; spladex runs a SparseEncoder made of an "
                     "MLMTransformer then a SpladePooling (SparseStaticEmbedding, SparseAutoEncoder, Dense, "
                     "Normalize and other modules are not implemented)", where, names[i], types[i]);
    if (mlm) {
      char a[1100], b[1100];
      model_path_key(dirs[i], a, sizeof a);
      model_path_key(resolved, b, sizeof b);
      if (strcmp(a, b) != 0)
        return err_set(ERR_FORMAT, "%s: the MLMTransformer '%s' is in %s but the encoder found is %s", where,
                       names[i], dirs[i], resolved);
    } else {
      int rc = model_read_pooling(dirs[i], c);
      if (rc) return rc;
    }
  }
  if (n < 2)
    return err_set(ERR_FORMAT, "%s: no SpladePooling module after the MLMTransformer; spladex runs a SparseEncoder "
                   "made of an MLMTransformer then a SpladePooling", where);
  return 0;
}

/* DIR/modules.json (a sentence-transformers directory), if any: see model_load. */
static int model_read_modules(const char *dir, const char *resolved, model_config *c) {
  char path[1100];
  cJSON *modules = NULL, *router = NULL;
  int rc = 0;
  snprintf(path, sizeof path, "%s/modules.json", dir);
  if (!model_is_file(path)) return 0;
  if ((rc = model_read_json(path, &modules))) return rc;
  enum { MAX_MODULES = 8 };
  const char *names[MAX_MODULES], *types[MAX_MODULES];
  char dirs[MAX_MODULES][1100];
  const char *dir_ptrs[MAX_MODULES];
  int n = cJSON_IsArray(modules) ? cJSON_GetArraySize(modules) : -1;
  if (n < 1 || n > MAX_MODULES) {
    rc = err_set(ERR_FORMAT, "%s: not an array of 1 to %d modules", path, MAX_MODULES);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    const cJSON *e = cJSON_GetArrayItem(modules, i);
    const char *type = model_config_string(e, "type"), *sub = model_config_string(e, "path");
    const char *name = model_config_string(e, "name");
    if (!type || !sub) {
      rc = err_set(ERR_FORMAT, "%s: module %d has no type or path", path, i);
      goto done;
    }
    names[i] = name ? name : sub;
    types[i] = type;
    int k = snprintf(dirs[i], sizeof dirs[i], "%s/%s", dir, sub);
    if (k < 0 || (size_t)k >= sizeof dirs[i]) {
      rc = err_set(ERR_FORMAT, "%s: path too long", path);
      goto done;
    }
    dir_ptrs[i] = dirs[i];
  }
  if (!model_type_is(types[0], "Router")) {
    rc = model_check_route(path, n, names, types, dir_ptrs, resolved, c);
    goto done;
  }
  /* A Router (asymmetric model): documents take its "document" route. */
  if (n != 1) {
    rc = err_set(ERR_FORMAT, "%s: module '%s' follows the Router; not supported", path, names[1]);
    goto done;
  }
  char router_path[1200];
  snprintf(router_path, sizeof router_path, "%s/router_config.json", dirs[0]);
  if ((rc = model_read_json(router_path, &router))) goto done;
  const cJSON *route_types = cJSON_GetObjectItemCaseSensitive(router, "types");
  const cJSON *structure = cJSON_GetObjectItemCaseSensitive(router, "structure");
  const cJSON *route = structure ? cJSON_GetObjectItemCaseSensitive(structure, "document") : NULL;
  int m = cJSON_IsArray(route) ? cJSON_GetArraySize(route) : -1;
  if (m < 1 || m > MAX_MODULES || !cJSON_IsObject(route_types)) {
    rc = err_set(ERR_FORMAT, "%s: no \"document\" route of 1 to %d modules in \"structure\" (with their \"types\")",
                 router_path, MAX_MODULES);
    goto done;
  }
  char router_dir[1100];
  snprintf(router_dir, sizeof router_dir, "%s", dirs[0]);
  for (int i = 0; i < m; i++) {
    const cJSON *name = cJSON_GetArrayItem(route, i);
    const char *type = cJSON_IsString(name) ? model_config_string(route_types, name->valuestring) : NULL;
    if (!type) {
      rc = err_set(ERR_FORMAT, "%s: document module %d has no type in \"types\"", router_path, i);
      goto done;
    }
    names[i] = name->valuestring;
    types[i] = type;
    int k = snprintf(dirs[i], sizeof dirs[i], "%s/%s", router_dir, name->valuestring);
    if (k < 0 || (size_t)k >= sizeof dirs[i]) {
      rc = err_set(ERR_FORMAT, "%s: path too long", router_path);
      goto done;
    }
    dir_ptrs[i] = dirs[i];
  }
  rc = model_check_route(router_path, m, names, types, dir_ptrs, resolved, c);
done:
  cJSON_Delete(router);
  cJSON_Delete(modules);
  return rc;
}

int model_load(const char *dir, model **out) {
  int rc = 0;
  char resolved[1000], path[1100];
  char *config_text = NULL;
  cJSON *config = NULL;
  tensor_file *tf = NULL;
  model_entry *entries = NULL;
  model *m = NULL;
  *out = NULL;

  if ((rc = model_resolve_dir(dir, resolved, sizeof resolved))) goto fail;
  m = calloc(1, sizeof *m);
  if (!m) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", dir);
    goto fail;
  }
  snprintf(m->dir, sizeof m->dir, "%s", resolved);
  snprintf(path, sizeof path, "%s/config.json", resolved);
  if ((rc = model_read_text(path, &config_text))) goto fail;
  config = cJSON_Parse(config_text);
  if (!cJSON_IsObject(config)) {
    rc = err_set(ERR_FORMAT, "%s: not a valid JSON object", path);
    goto fail;
  }
  if ((rc = model_parse_config(path, config, m))) goto fail;
  if ((rc = model_read_modules(dir, resolved, &m->cfg))) goto fail;
  const char *name = model_config_string(config, "_name_or_path");
  if (name && name[0])
    snprintf(m->name, sizeof m->name, "%s", name);
  else if (!model_source_name(dir, m->name, sizeof m->name))
    model_basename(dir, m->name, sizeof m->name);
  int tie_allowed = m->cfg.tie_embeddings;

  /* The weights: model.safetensors, else pytorch_model.bin. */
  snprintf(m->weights_path, sizeof m->weights_path, "%s/model.safetensors", resolved);
  if (!model_is_file(m->weights_path)) {
    snprintf(m->weights_path, sizeof m->weights_path, "%s/pytorch_model.bin", resolved);
    if (!model_is_file(m->weights_path)) {
      snprintf(path, sizeof path, "%s/model.safetensors.index.json", resolved);
      if (model_is_file(path))
        rc = err_set(ERR_FORMAT, "%s: sharded checkpoints are not supported; merge them into one model.safetensors",
                     path);
      else
        rc = err_set(ERR_IO, "%s: no model.safetensors or pytorch_model.bin", resolved);
      goto fail;
    }
  }
  if ((rc = tf_open(m->weights_path, &tf))) goto fail;

  m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
  entries = calloc(model_entry_capacity(&m->cfg), sizeof *entries);
  if (!m->layers || !entries) {
    rc = err_set(ERR_NOMEM, "%s: out of memory", dir);
    goto fail;
  }
  size_t n = model_entries(m, entries, 1);
  model_entry *decoder = &entries[n - 1];
  const tensor_ref *word = model_find(tf, entries[0].name);
  const tensor_ref *projector = model_find(tf, decoder->name);
  /* Tied unless the checkpoint carries a projector that differs from the word embeddings. */
  m->decoder_tied = 1;
  if (projector) {
    if ((rc = model_check_shape(m->weights_path, projector, decoder))) goto fail;
    if (!word || projector->dtype != word->dtype || projector->nbytes != word->nbytes ||
        (projector->data != word->data && memcmp(projector->data, word->data, word->nbytes) != 0))
      m->decoder_tied = 0;
  } else if (!tie_allowed) {
    rc = err_set(ERR_SHAPE, "%s: config.json sets tie_word_embeddings false but the checkpoint has no '%s'",
                 m->weights_path, decoder->name);
    goto fail;
  }
  if (m->decoder_tied) n--;

  /* Every tensor must be present with its shape before the arena is sized: the sizes come from
   * config.json, and a config that disagrees with the checkpoint (or a hostile one: vocab 2^24 x
   * hidden 2^16) must get the tensor's name in the message, not an allocation of terabytes. */
  for (size_t i = 0; i < n; i++) {
    const tensor_ref *t = model_find(tf, entries[i].name);
    if (!t) {
      rc = model_missing(m->weights_path, &entries[i]);
      goto fail;
    }
    if ((rc = model_check_shape(m->weights_path, t, &entries[i]))) goto fail;
  }

  /* Size and carve the arena. */
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    size_t count = (size_t)entries[i].shape[0] * (size_t)(entries[i].ndim == 2 ? entries[i].shape[1] : 1);
    total += (count + MODEL_ALIGN_FLOATS - 1) / MODEL_ALIGN_FLOATS * MODEL_ALIGN_FLOATS;
  }
  void *arena = NULL;
  if (posix_memalign(&arena, MODEL_ALIGN_FLOATS * sizeof(float), (total ? total : 1) * sizeof(float)) != 0) {
    rc = err_set(ERR_NOMEM, "%s: cannot allocate %zu MB for the weights", dir, total * sizeof(float) >> 20);
    goto fail;
  }
  m->arena = arena;
  m->arena_floats = total;
  size_t offset = 0;
  for (size_t i = 0; i < n; i++) {
    const model_entry *e = &entries[i];
    size_t count = (size_t)e->shape[0] * (size_t)(e->ndim == 2 ? e->shape[1] : 1);
    const tensor_ref *t = model_find(tf, e->name);
    if (!t) {
      rc = model_missing(m->weights_path, e);
      goto fail;
    }
    if ((rc = model_check_shape(m->weights_path, t, e))) goto fail;
    *e->slot = m->arena + offset;
    if ((rc = tf_to_f32(t, *e->slot, count))) {
      rc = err_wrap(rc, "%s", m->weights_path);
      goto fail;
    }
    offset += (count + MODEL_ALIGN_FLOATS - 1) / MODEL_ALIGN_FLOATS * MODEL_ALIGN_FLOATS;
  }
  if (m->decoder_tied) m->decoder_w = m->word_emb;
  /* RoBERTa: from the padding_idx row (position_offset - 1), so a <pad> token has row 0 */
  m->pos_rows = m->cfg.max_positions + (m->cfg.position_offset > 0);
  m->pos_emb = m->pos_table + (size_t)(m->cfg.position_offset - (m->cfg.position_offset > 0)) * (size_t)m->cfg.hidden;

  tf_close(tf);
  tf = NULL;
  if ((rc = sha256_file_hex(m->weights_path, m->weights_sha256))) goto fail;
  free(entries);
  cJSON_Delete(config);
  free(config_text);
  *out = m;
  return 0;

fail:
  free(entries);
  tf_close(tf);
  cJSON_Delete(config);
  free(config_text);
  model_free(m);
  return rc;
}

const float *model_tensor(const model *m, const char *name, size_t *count) {
  if (!m || !name) return NULL;
  model_entry *entries = calloc(model_entry_capacity(&m->cfg), sizeof *entries);
  if (!entries) return NULL;
  /* model_entries only takes the slots' addresses; it does not write through them. */
  size_t n = model_entries((model *)m, entries, 1);
  const float *found = NULL;
  const char *alias = m->cfg.arch == MODEL_BERT && m->cfg.tie_embeddings &&
                              strcmp(name, "cls.predictions.decoder.bias") == 0
                          ? "cls.predictions.bias"
                      : m->cfg.arch == MODEL_ROBERTA && strcmp(name, "lm_head.decoder.bias") == 0 ? "lm_head.bias"
                                                                                                 : name;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(entries[i].name, alias) != 0) continue;
    found = *entries[i].slot;
    if (count) *count = (size_t)entries[i].shape[0] * (size_t)(entries[i].ndim == 2 ? entries[i].shape[1] : 1);
    break;
  }
  free(entries);
  return found;
}

void model_positions(const model *m, const int32_t *ids, int len, int32_t *rows) {
  if (m->cfg.position_offset == 0) {
    for (int t = 0; t < len; t++) rows[t] = t;
    return;
  }
  int32_t next = 1;
  for (int t = 0; t < len; t++) rows[t] = ids[t] == m->cfg.pad_id ? 0 : next++;
}

void model_free(model *m) {
  if (!m) return;
  free(m->arena);
  free(m->layers);
  free(m);
}
