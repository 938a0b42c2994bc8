/* model: a SPLADE masked-LM encoder's configuration and fp32 weights in one arena.
 *
 * DistilBertForMaskedLM and BertForMaskedLM map onto the same struct (config.json decides which,
 * never the directory name). Shapes follow HF: Linear weights are (out, in), row-major.
 * Legend: H hidden, F ffn, V vocab, P max positions, L layers, Y token types.
 *
 * Tensor names mapped (DistilBERT | BERT):
 *   word_emb     distilbert.embeddings.word_embeddings.weight | bert.embeddings.word_embeddings.weight
 *   pos_emb      distilbert.embeddings.position_embeddings.weight | bert.embeddings.position_embeddings.weight
 *   type_emb     -                                            | bert.embeddings.token_type_embeddings.weight
 *   emb_ln       distilbert.embeddings.LayerNorm.{weight,bias}| bert.embeddings.LayerNorm.{weight,bias}
 *   layer i      distilbert.transformer.layer.i.              | bert.encoder.layer.i.
 *     q,k,v      attention.{q,k,v}_lin                        | attention.self.{query,key,value}
 *     o          attention.out_lin                            | attention.output.dense
 *     attn_ln    sa_layer_norm                                | attention.output.LayerNorm
 *     ffn1       ffn.lin1                                     | intermediate.dense
 *     ffn2       ffn.lin2                                     | output.dense
 *     out_ln     output_layer_norm                            | output.LayerNorm
 *   head         vocab_transform                              | cls.predictions.transform.dense
 *   head_ln      vocab_layer_norm                             | cls.predictions.transform.LayerNorm
 *   decoder_w    vocab_projector.weight (tied: word_emb)      | cls.predictions.decoder.weight (tied)
 *   decoder_b    vocab_projector.bias                         | cls.predictions.bias (or decoder.bias;
 *                                                                decoder.bias first when untied)
 * The "distilbert."/"bert." prefix may be absent (bare encoder checkpoints).
 * RobertaForMaskedLM: BERT's names under "roberta.", the head lm_head.{dense, layer_norm,
 * decoder.weight (tied), bias}; its position table has padding_idx + 1 = pad_token_id + 1 rows
 * before position 0 (HF numbers a sequence's positions from there): pos_emb starts at the
 * padding_idx row, which HF gives a <pad> token inside the text (model_positions).
 */
#ifndef SPLADEX_MODEL_H
#define SPLADEX_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MODEL_DISTILBERT = 0, MODEL_BERT = 1, MODEL_ROBERTA = 2 } model_arch;

/* How token weights become the document's (sentence-transformers' SpladePooling config;
 * naver/splade's max and relu when the directory is not a SparseEncoder):
 *   w_t = log1p(relu(logit_t))            (MODEL_ACT_RELU)
 *   w_t = log1p(log1p(relu(logit_t)))     (MODEL_ACT_LOG1P_RELU)
 *   w = max_t w_t (MODEL_POOL_MAX) or sum_t w_t (MODEL_POOL_SUM) over the document's tokens. */
typedef enum { MODEL_POOL_MAX = 0, MODEL_POOL_SUM = 1 } model_pooling;
typedef enum { MODEL_ACT_RELU = 0, MODEL_ACT_LOG1P_RELU = 1 } model_activation;

typedef struct {
  model_arch arch;
  int n_layers;      /* L */
  int hidden;        /* H */
  int n_heads;
  int ffn;           /* F */
  int vocab;         /* V */
  int max_positions; /* P: positions a sequence may use (RoBERTa: its table's rows - position_offset) */
  int position_offset; /* RoBERTa: pad_token_id + 1, the table rows before position 0; else 0 */
  int type_vocab;    /* Y (BERT; 0 for DistilBERT) */
  float ln_eps;      /* layer_norm_eps (BERT) or 1e-12 (DistilBERT) */
  int pad_id, unk_id, cls_id, sep_id, mask_id;
  int tie_embeddings; /* config.json tie_word_embeddings (default 1); BERT untied: decoder_b is
                         cls.predictions.decoder.bias, as transformers >= 5 uses it */
  model_pooling pooling;       /* SpladePooling's pooling_strategy (default max) */
  model_activation activation; /* SpladePooling's activation_function (default relu) */
} model_config;

typedef struct {
  float *q_w;      /* (H, H) */
  float *q_b;      /* (H) */
  float *k_w;      /* (H, H) */
  float *k_b;      /* (H) */
  float *v_w;      /* (H, H) */
  float *v_b;      /* (H) */
  float *o_w;      /* (H, H) */
  float *o_b;      /* (H) */
  float *attn_ln_g; /* (H) */
  float *attn_ln_b; /* (H) */
  float *ffn1_w;   /* (F, H) */
  float *ffn1_b;   /* (F) */
  float *ffn2_w;   /* (H, F) */
  float *ffn2_b;   /* (H) */
  float *out_ln_g; /* (H) */
  float *out_ln_b; /* (H) */
} model_layer;

typedef struct {
  model_config cfg;
  float *arena;        /* one allocation holding every tensor below */
  size_t arena_floats;
  float *word_emb;     /* (V, H) */
  float *pos_emb;      /* (pos_rows, H): the rows model_positions indexes (BERT: the table;
                        * RoBERTa: pos_table from its padding_idx row) */
  int pos_rows;        /* BERT: P; RoBERTa: P + 1 */
  float *pos_table;    /* (P + position_offset, H) the checkpoint's position table */
  float *type_emb;     /* (Y, H), NULL for DistilBERT; only row 0 is used */
  float *emb_ln_g;     /* (H) */
  float *emb_ln_b;     /* (H) */
  model_layer *layers; /* [L] */
  float *head_w;       /* (H, H) */
  float *head_b;       /* (H) */
  float *head_ln_g;    /* (H) */
  float *head_ln_b;    /* (H) */
  float *decoder_w;    /* (V, H): equals word_emb when tied (the usual case) */
  float *decoder_b;    /* (V) */
  int decoder_tied;    /* 1 when decoder_w points into word_emb */
  char dir[1000];           /* the directory config.json and the weights were read from:
                            * model_resolve_dir(DIR) (cli_open_model reads the vocabulary there) */
  char weights_path[1024]; /* the checkpoint file that was read */
  char weights_sha256[65]; /* hex sha256 of that file */
  char name[256];          /* "_name_or_path" from config.json, else the first word of
                            * DIR/SOURCE (scripts/fetch_model.sh), else the directory name */
} model;

/* Reads config.json and the weights (model.safetensors, else pytorch_model.bin) of the
 * directory that model_resolve_dir(DIR) picks (recorded in m->dir) into one fp32 arena.
 * A missing or mis-shaped tensor is an error naming the tensor, the shape found and the shape
 * expected. Architectures: model_type distilbert or bert with a masked-LM head; any other is
 * refused naming it and the supported list.
 * A sentence-transformers SparseEncoder (DIR/modules.json) must be an MLMTransformer then a
 * SpladePooling, or a Router whose "document" route is those two (its query route is not read);
 * the SpladePooling config sets cfg.pooling and cfg.activation, and its embedding_dimension (if
 * set) must be the vocabulary size. Any other module is refused naming its type and where it
 * is. Returns 0 and *out; the caller frees with model_free(). */
int model_load(const char *dir, model **out);

/* Resolves the directory that holds config.json and the weights for a model directory: the
 * first of DIR/document_0_MLMTransformer (the document encoder of an asymmetric
 * sentence-transformers SPLADE model, whose top level holds the query encoder), DIR itself,
 * DIR/0_MLMTransformer that has a config.json. This is the one search order of a model
 * directory: the vocabulary is read from the same directory (cli_open_model). Writes into out
 * (size cap). 0 or ERR_IO. */
int model_resolve_dir(const char *dir, char *out, size_t cap);

/* The tensor of m that HF transformers calls name once the model is loaded (its state_dict name,
 * e.g. "bert.encoder.layer.0.attention.self.query.weight", "vocab_projector.weight" which is
 * word_emb when tied, "cls.predictions.decoder.bias" = decoder_b), or NULL for a name spladex
 * does not map. *count (if count is not NULL) gets its element count. Borrowed from m. */
const float *model_tensor(const model *m, const char *name, size_t *count);

/* Writes the pos_emb row of each of the len tokens ids (one sequence) to rows, as HF numbers
 * positions: BERT and DistilBERT t for token t; RoBERTa (create_position_ids_from_input_ids)
 * 1 + the count of non-<pad> tokens before token t, and row 0 (the padding_idx row) for a
 * <pad> token, which a text can hold literally. Every row is in [0, m->pos_rows) when
 * len <= cfg.max_positions. */
void model_positions(const model *m, const int32_t *ids, int len, int32_t *rows);

/* Frees the arena and the struct. model_free(NULL) is a no-op. */
void model_free(model *m);

#endif
