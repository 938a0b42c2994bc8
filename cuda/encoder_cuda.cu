/* encoder_cuda: the CUDA encoder (see encoder_cuda.h), host code composing the op launchers.
 * Legend: N tokens in the batch, B docs, H hidden, F ffn, V vocab, Nb token block, Vb vocab chunk.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "encoder.h"
#include "err.h"
#include "model.h"
}
#include "attention.h"
#include "attention_mma.h"
#include "bias_gelu.h"
#include "cu_check.h"
#include "cu_dtype.h"
#include "cuda_twins.h"
#include "decoder_maxpool.h"
#include "embed_layernorm.h"
#include "encoder_cuda.h"
#include "fill.h"
#include "linear.h"
#include "maxpool_logits.h"
#include "residual_layernorm.h"
#include "row_offsets.h"
#include "sparsify_gather.h"
#include "sparsify_weights.h"

namespace {
const int kTokenBlockMax = 16384;               /* rows of one decoder GEMM */
const size_t kBlasWorkspaceBytes = 32u << 20;   /* cuBLAS workspace, set once (no allocation per call) */
const unsigned kEventFlags = cudaEventDisableTiming | cudaEventBlockingSync;

/* Takes aligned pieces out of one allocation: a first pass with base == NULL only measures. */
struct bump {
  char *base;
  size_t off;
};

void *take(bump *b, size_t bytes) {
  const size_t o = (b->off + 255u) & ~(size_t)255u;
  b->off = o + bytes;
  return b->base ? b->base + o : NULL;
}

struct enc_slot {
  int n_docs;
  int32_t *h_upload;  /* pinned (2 Nmax + 2 Bmax + 4): ids | positions | offsets | {0, 1} |
                       * row offsets */
  int64_t *h_indptr;  /* pinned (Bmax + 1): the batch's indptr, copied back at its end */
  int64_t *indptr;    /* device (Bmax + 1) */
  int32_t *indices;   /* device (nnz_cap) */
  float *values;      /* device (nnz_cap) */
  cudaEvent_t done;   /* recorded after the indptr copy: the batch's device work is over */
};

struct dev_layer {
  void *qkv_w;      /* (3H, H) dtype: q_w | k_w | v_w */
  float *qkv_b;     /* (3H) */
  void *o_w;        /* (H, H) dtype */
  float *o_b;       /* (H) */
  float *attn_ln_g; /* (H) */
  float *attn_ln_b; /* (H) */
  void *ffn1_w;     /* (F, H) dtype */
  float *ffn1_b;    /* (F) */
  void *ffn2_w;     /* (H, F) dtype */
  float *ffn2_b;    /* (H) */
  float *out_ln_g;  /* (H) */
  float *out_ln_b;  /* (H) */
};
}  // namespace

struct enc_cuda {
  const model *m;
  enc_options opt;
  cu_dtype dt;
  size_t esz; /* bytes per GEMM operand element */
  int fused_decoder; /* 0: cuBLAS in vocabulary chunks + maxpool_logits; 1: decoder_maxpool_cuda
                      * (wmma); 2: decoder_maxpool_wgmma_cuda (sm_90a) */
  int attn_mma;      /* 1: attention_mma_cuda (tensor cores); 0: attention_cuda (fp32) */
  int act_lp;        /* 1: the GEMMs write fp16 / bf16 activations (the lp route); 0: fp32 */
  char description[400];
  cudaStream_t stream;
  cublasHandle_t blas;

  /* weights: one allocation */
  char *d_weights;
  size_t weights_bytes;
  float *word_emb;  /* (V, H) fp32 */
  float *pos_emb;   /* (m->pos_rows, H) fp32: the rows model_positions indexes */
  float *type_row;  /* (H) fp32 or NULL */
  float *emb_ln_g, *emb_ln_b; /* (H) */
  dev_layer *layers;          /* [L] host array of device pointers */
  void *head_w;               /* (H, H) dtype */
  float *head_b, *head_ln_g, *head_ln_b; /* (H) */
  void *decoder_w;            /* (V, H) dtype; word_emb itself when tied and fp32 */
  float *decoder_b;           /* (V) */

  /* workspace: one allocation */
  char *d_work;
  size_t work_bytes;
  int32_t *d_upload;  /* (2 Nmax + 2 Bmax + 4): ids | positions | offsets | {0, 1} | row offsets */
  int32_t *d_ids;     /* (Nmax) */
  int *d_positions;   /* (Nmax) */
  int *d_offsets;     /* (Bmax + 1) sequence offsets: the attention segments */
  int *d_unit_offsets; /* (2) {0, 1}: one segment of one row, to merge carry as a logit row */
  int *d_row_offsets; /* (Bmax + 1) row offsets: the max-pool segments (a row = a document) */
  float *carry;       /* (V) running max of an unfinished row (enc_rows.unfinished) */
  float *x;           /* (Nmax, H) hidden state */
  void *x_lp;         /* (Nmax, H) dtype copy, NULL for fp32 */
  float *wide;        /* (Nmax, max(3H, F)) qkv, then the FFN activations; NULL in the lp route */
  void *big_lp;       /* (Nmax, F) dtype copy of the FFN activations, NULL for fp32; in the lp
                       * route (Nmax, max(3H, F)): qkv, then the FFN activations themselves */
  float *ctx;         /* (Nmax, H) attention output (fp32 mode) */
  void *ctx_lp;       /* (Nmax, H) dtype attention output, NULL for fp32 */
  float *tmp;         /* (Nmax, H) projections (not in the lp route), then the head output */
  void *tmp_lp;       /* (Nmax, H) dtype copy of the head output, NULL for fp32; in the lp route
                       * also the layers' projections themselves */
  void *logits;       /* (Nb, Vb) one decoder block, fp32 (lp route: dt); NULL with the fused
                       * decoder */
  float *pooled;      /* (Bmax, V) running max, then weights */
  int32_t *row_nnz;   /* (Bmax) */
  void *blas_ws;
  int token_block;    /* Nb */
  int64_t nnz_cap;    /* Bmax * min(top_k or V, V) */

  /* Batches in flight: batch i uses slots[i % ENC_MAX_IN_FLIGHT]. The compute workspace above is
   * shared (one stream orders the batches); what a batch still needs after its kernels ran (its
   * CSR on the device, its indptr copy) or before (its packed ids on the host) is per slot. */
  enc_slot slots[ENC_MAX_IN_FLIGHT];
  int64_t submitted, collected;
  cudaStream_t copy_stream; /* the rows' device-to-host copies, beside the next batch's compute */
  cudaEvent_t copied;       /* recorded after those copies */

  /* pinned host memory of the collected batch (enc_result points here) */
  int64_t *h_indptr;  /* (Bmax + 1) */
  int32_t *h_indices; /* (nnz_cap) */
  float *h_values;    /* (nnz_cap) */
};

#define TRY(call)                  \
  do {                             \
    int try_rc_ = (call);          \
    if (try_rc_ < 0) return try_rc_; \
  } while (0)

/* A route chosen by environment variable `name` among the NULL-terminated `values`: unset or
 * empty gives 0 (the first, the default), values[i] gives i, anything else ERR_ARG naming them. */
static int env_route(const char *name, const char *const *values, int *out) {
  const char *v = getenv(name);
  *out = 0;
  if (!v || !*v) return 0;
  char expected[96] = "";
  for (int i = 0; values[i]; i++) {
    if (!strcmp(v, values[i])) {
      *out = i;
      return 0;
    }
    snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s",
             i ? (values[i + 1] ? ", " : " or ") : "", values[i]);
  }
  return err_set(ERR_ARG, "%s=%s: expected %s", name, v, expected);
}

/* Lays out (or, with b->base set, assigns) the weight tensors. */
static void layout_weights(enc_cuda *e, bump *b) {
  const model_config *c = &e->m->cfg;
  const size_t H = (size_t)c->hidden, F = (size_t)c->ffn, V = (size_t)c->vocab;
  const size_t P = (size_t)e->m->pos_rows, es = e->esz;
  e->word_emb = (float *)take(b, V * H * 4);
  e->pos_emb = (float *)take(b, P * H * 4);
  e->type_row = e->m->type_emb ? (float *)take(b, H * 4) : NULL;
  e->emb_ln_g = (float *)take(b, H * 4);
  e->emb_ln_b = (float *)take(b, H * 4);
  for (int l = 0; l < c->n_layers; l++) {
    dev_layer *L = &e->layers[l];
    L->qkv_w = take(b, 3 * H * H * es);
    L->qkv_b = (float *)take(b, 3 * H * 4);
    L->o_w = take(b, H * H * es);
    L->o_b = (float *)take(b, H * 4);
    L->attn_ln_g = (float *)take(b, H * 4);
    L->attn_ln_b = (float *)take(b, H * 4);
    L->ffn1_w = take(b, F * H * es);
    L->ffn1_b = (float *)take(b, F * 4);
    L->ffn2_w = take(b, H * F * es);
    L->ffn2_b = (float *)take(b, H * 4);
    L->out_ln_g = (float *)take(b, H * 4);
    L->out_ln_b = (float *)take(b, H * 4);
  }
  e->head_w = take(b, H * H * es);
  e->head_b = (float *)take(b, H * 4);
  e->head_ln_g = (float *)take(b, H * 4);
  e->head_ln_b = (float *)take(b, H * 4);
  if (e->m->decoder_tied && e->dt == CU_F32)
    e->decoder_w = e->word_emb;
  else
    e->decoder_w = take(b, V * H * es);
  e->decoder_b = (float *)take(b, V * 4);
}

static void layout_work(enc_cuda *e, bump *b) {
  const model_config *c = &e->m->cfg;
  const size_t N = (size_t)e->opt.max_batch_tokens, B = (size_t)e->opt.max_batch_docs;
  const size_t H = (size_t)c->hidden, F = (size_t)c->ffn, V = (size_t)c->vocab;
  const size_t wide = 3 * H > F ? 3 * H : F, es = e->esz;
  const int lp = e->dt != CU_F32;
  e->d_upload = (int32_t *)take(b, (2 * N + 2 * B + 4) * 4);
  if (e->d_upload) {
    e->d_ids = e->d_upload;
    e->d_positions = (int *)(e->d_upload + N);
    e->d_offsets = (int *)(e->d_upload + 2 * N);
    e->d_unit_offsets = (int *)(e->d_upload + 2 * N + B + 1);
    e->d_row_offsets = (int *)(e->d_upload + 2 * N + B + 3);
  }
  e->carry = (float *)take(b, V * 4);
  e->x = (float *)take(b, N * H * 4);
  e->x_lp = lp ? take(b, N * H * es) : NULL;
  e->wide = e->act_lp ? NULL : (float *)take(b, N * wide * 4);
  e->big_lp = lp ? take(b, N * (e->act_lp ? wide : F) * es) : NULL;
  e->ctx = lp ? NULL : (float *)take(b, N * H * 4);
  e->ctx_lp = lp ? take(b, N * H * es) : NULL;
  e->tmp = (float *)take(b, N * H * 4);
  e->tmp_lp = lp ? take(b, N * H * es) : NULL;
  e->logits = e->fused_decoder ? NULL
                               : take(b, (size_t)e->token_block * CUTWIN_VOCAB_BLOCK *
                                             (e->act_lp ? es : 4));
  e->pooled = (float *)take(b, B * V * 4);
  e->row_nnz = (int32_t *)take(b, B * 4);
  for (int i = 0; i < ENC_MAX_IN_FLIGHT; i++) {
    enc_slot *sl = &e->slots[i];
    sl->indptr = (int64_t *)take(b, (B + 1) * 8);
    sl->indices = (int32_t *)take(b, (size_t)e->nnz_cap * 4);
    sl->values = (float *)take(b, (size_t)e->nnz_cap * 4);
  }
  e->blas_ws = take(b, kBlasWorkspaceBytes);
}

/* Copies n floats of host src to device dst in type t (staging: n * esz bytes of host memory). */
static int upload(void *dst, const float *src, size_t n, cu_dtype t, void *staging,
                  const char *what) {
  const void *from = src;
  if (t != CU_F32) {
    cu_convert(src, n, t, staging);
    from = staging;
  }
  int rc = CU_CHECK(cudaMemcpy(dst, from, n * cu_dtype_size(t), cudaMemcpyHostToDevice));
  return rc < 0 ? err_wrap(rc, "uploading %s", what) : 0;
}

static int upload_weights(enc_cuda *e) {
  const model *m = e->m;
  const model_config *c = &m->cfg;
  const size_t H = (size_t)c->hidden, F = (size_t)c->ffn, V = (size_t)c->vocab;
  const size_t P = (size_t)m->pos_rows, es = e->esz;
  size_t biggest = V * H > F * H ? V * H : F * H;
  void *staging = malloc(biggest * es);
  if (!staging) return err_set(ERR_NOMEM, "out of host memory staging %zu weights", biggest);
  int rc = 0;
#define UP(dst, src, n, t, what) \
  if ((rc = upload((dst), (src), (n), (t), staging, (what))) < 0) goto done
  UP(e->word_emb, m->word_emb, V * H, CU_F32, "word embeddings");
  UP(e->pos_emb, m->pos_emb, P * H, CU_F32, "position embeddings");
  if (e->type_row) UP(e->type_row, m->type_emb, H, CU_F32, "token type embedding 0");
  UP(e->emb_ln_g, m->emb_ln_g, H, CU_F32, "embedding LayerNorm");
  UP(e->emb_ln_b, m->emb_ln_b, H, CU_F32, "embedding LayerNorm");
  for (int l = 0; l < c->n_layers; l++) {
    const model_layer *S = &m->layers[l];
    dev_layer *L = &e->layers[l];
    char *qkv = (char *)L->qkv_w;
    UP(qkv, S->q_w, H * H, e->dt, "a query weight");
    UP(qkv + H * H * es, S->k_w, H * H, e->dt, "a key weight");
    UP(qkv + 2 * H * H * es, S->v_w, H * H, e->dt, "a value weight");
    UP(L->qkv_b, S->q_b, H, CU_F32, "a query bias");
    UP(L->qkv_b + H, S->k_b, H, CU_F32, "a key bias");
    UP(L->qkv_b + 2 * H, S->v_b, H, CU_F32, "a value bias");
    UP(L->o_w, S->o_w, H * H, e->dt, "an attention output weight");
    UP(L->o_b, S->o_b, H, CU_F32, "an attention output bias");
    UP(L->attn_ln_g, S->attn_ln_g, H, CU_F32, "an attention LayerNorm");
    UP(L->attn_ln_b, S->attn_ln_b, H, CU_F32, "an attention LayerNorm");
    UP(L->ffn1_w, S->ffn1_w, F * H, e->dt, "an FFN weight");
    UP(L->ffn1_b, S->ffn1_b, F, CU_F32, "an FFN bias");
    UP(L->ffn2_w, S->ffn2_w, H * F, e->dt, "an FFN weight");
    UP(L->ffn2_b, S->ffn2_b, H, CU_F32, "an FFN bias");
    UP(L->out_ln_g, S->out_ln_g, H, CU_F32, "an output LayerNorm");
    UP(L->out_ln_b, S->out_ln_b, H, CU_F32, "an output LayerNorm");
  }
  UP(e->head_w, m->head_w, H * H, e->dt, "the MLM head weight");
  UP(e->head_b, m->head_b, H, CU_F32, "the MLM head bias");
  UP(e->head_ln_g, m->head_ln_g, H, CU_F32, "the MLM head LayerNorm");
  UP(e->head_ln_b, m->head_ln_b, H, CU_F32, "the MLM head LayerNorm");
  if (e->decoder_w != e->word_emb) UP(e->decoder_w, m->decoder_w, V * H, e->dt, "the decoder weight");
  UP(e->decoder_b, m->decoder_b, V, CU_F32, "the decoder bias");
#undef UP
done:
  free(staging);
  return rc;
}

extern "C" int enc_cuda_open(const model *m, const enc_options *opt, enc_cuda **out) {
  *out = NULL;
  const model_config *c = &m->cfg;
  if (opt->precision != ENC_FP32 && opt->precision != ENC_FP16 && opt->precision != ENC_BF16)
    return err_set(ERR_ARG, "unknown precision %d", (int)opt->precision);
  if (c->pooling != MODEL_POOL_MAX || c->activation != MODEL_ACT_RELU)
    return err_set(ERR_ARG, "the model's SpladePooling (%s pooling, %s) runs on the CPU only (--device cpu): the "
                   "CUDA encoder implements naver/splade's max pooling of log1p(relu(logits))",
                   c->pooling == MODEL_POOL_SUM ? "sum" : "max",
                   c->activation == MODEL_ACT_LOG1P_RELU ? "log1p_relu" : "relu");
  if (c->n_heads < 1 || c->hidden % c->n_heads)
    return err_set(ERR_ARG, "hidden %d is not a multiple of %d heads", c->hidden, c->n_heads);
  if (c->hidden / c->n_heads > ATTENTION_MAX_HEAD_DIM)
    return err_set(ERR_ARG, "head dim %d: the CUDA attention kernel supports at most %d",
                   c->hidden / c->n_heads, ATTENTION_MAX_HEAD_DIM);
  if (opt->max_batch_docs > INT_MAX / 2 || opt->max_batch_tokens > INT_MAX / 4)
    return err_set(ERR_ARG, "batch limits too large (%d docs, %d tokens)", opt->max_batch_docs,
                   opt->max_batch_tokens);
  int n_dev = 0;
  cudaError_t ce = cudaGetDeviceCount(&n_dev);
  if (ce != cudaSuccess || n_dev < 1) {
    (void)cudaGetLastError();
    return err_set(ERR_DEVICE, "no CUDA device (%s)",
                   ce != cudaSuccess ? cudaGetErrorString(ce) : "cudaGetDeviceCount found none");
  }
  if (opt->device < 0 || opt->device >= n_dev)
    return err_set(ERR_DEVICE, "CUDA device cuda:%d does not exist (%d device%s)", opt->device,
                   n_dev, n_dev == 1 ? "" : "s");

  enc_cuda *e = (enc_cuda *)calloc(1, sizeof *e);
  if (!e) return err_set(ERR_NOMEM, "out of memory for the CUDA encoder");
  e->m = m;
  e->opt = *opt;
  e->dt = (cu_dtype)opt->precision;
  e->esz = cu_dtype_size(e->dt);
  {
    /* SPLADEX_CUDA_TOKEN_BLOCK (tests only) lowers the decoder's token block so that a document
     * spans two decoder GEMMs at small batch sizes (test_encoder_gpu). */
    int block_max = kTokenBlockMax;
    const char *env = getenv("SPLADEX_CUDA_TOKEN_BLOCK");
    if (env && atoi(env) > 0 && atoi(env) < kTokenBlockMax) block_max = atoi(env);
    e->token_block = opt->max_batch_tokens < block_max ? opt->max_batch_tokens : block_max;
  }
  {
    const int64_t per_doc = opt->top_k > 0 && opt->top_k < c->vocab ? opt->top_k : c->vocab;
    e->nnz_cap = (int64_t)opt->max_batch_docs * per_doc;
  }
  int rc = 0;
  cudaDeviceProp prop;
  bump b;
  if ((rc = CU_CHECK(cudaSetDevice(opt->device))) < 0) goto fail;
  if ((rc = CU_CHECK(cudaGetDeviceProperties(&prop, opt->device))) < 0) goto fail;
  /* The routes, each chosen by an environment variable; the default is the route that came
   * first, the reference, until a GPU run has measured and checked the other (issue 13):
   *   SPLADEX_CUDA_DECODER=chunked|fused|wgmma   cuBLAS in vocabulary chunks + max, or one
   *                                        fused kernel (fp16/bf16, hidden % 16 == 0, sm_80+:
   *                                        wmma; wgmma: compute capability 9.0 and a build with
   *                                        sm_90a): decoder_maxpool.cu
   *   SPLADEX_CUDA_ATTENTION=fp32|mma      attention.cu (fp32 CUDA cores) or attention_mma.cu
   *                                        (tensor cores; fp16/bf16, head dim % 16 == 0, sm_80+)
   *   SPLADEX_CUDA_ACTIVATIONS=fp32|lp     fp32 GEMM outputs with rounded copies for the next
   *                                        GEMM, or GEMMs that write fp16/bf16 themselves, bias and
   *                                        GELU applied on the 16-bit tensor (fp16/bf16; needs the
   *                                        mma attention, which adds the QKV bias while staging) */
  {
    static const char *const decoders[] = {"chunked", "fused", "wgmma", NULL};
    static const char *const attentions[] = {"fp32", "mma", NULL};
    static const char *const activations[] = {"fp32", "lp", NULL};
    if ((rc = env_route("SPLADEX_CUDA_DECODER", decoders, &e->fused_decoder)) < 0 ||
        (rc = env_route("SPLADEX_CUDA_ATTENTION", attentions, &e->attn_mma)) < 0 ||
        (rc = env_route("SPLADEX_CUDA_ACTIVATIONS", activations, &e->act_lp)) < 0)
      goto fail;
  }
  if (e->fused_decoder && (e->dt == CU_F32 || c->hidden % 16 || prop.major < 8)) {
    rc = err_set(ERR_ARG, "SPLADEX_CUDA_DECODER=%s needs --precision fp16 or bf16, a hidden "
                 "size that is a multiple of 16 and a GPU of compute capability 8.0 or newer "
                 "(here: %s, hidden %d, %d.%d)", e->fused_decoder == 2 ? "wgmma" : "fused",
                 cu_dtype_name(e->dt), c->hidden, prop.major, prop.minor);
    goto fail;
  }
  if (e->fused_decoder == 2) {
    char why[200] = "";
    if ((rc = decoder_maxpool_wgmma_supported(why, sizeof why)) < 0) goto fail;
    if (rc == 0) {
      rc = err_set(ERR_ARG, "SPLADEX_CUDA_DECODER=wgmma: %s", why);
      goto fail;
    }
  }
  if (e->attn_mma &&
      (!attention_mma_supported(c->hidden / c->n_heads, e->dt) || prop.major < 8)) {
    rc = err_set(ERR_ARG, "SPLADEX_CUDA_ATTENTION=mma needs --precision fp16 or bf16, a head "
                 "dim that is a multiple of 16 up to %d and a GPU of compute capability 8.0 or "
                 "newer (here: %s, head dim %d, %d.%d)", ATTN_MMA_MAX_HEAD_DIM,
                 cu_dtype_name(e->dt), c->hidden / c->n_heads, prop.major, prop.minor);
    goto fail;
  }
  if (e->act_lp && !e->attn_mma) {
    rc = err_set(ERR_ARG, "SPLADEX_CUDA_ACTIVATIONS=lp needs SPLADEX_CUDA_ATTENTION=mma (the "
                 "fp32 attention kernel reads fp32 q, k, v with their bias added)");
    goto fail;
  }
  /* The first line of every CUDA job: which card, how much memory, what precision and route. */
  snprintf(e->description, sizeof e->description,
           "cuda:%d %s (%.1f GiB, sm_%d%d) %s, %s activations, %s attention, %s decoder",
           opt->device, prop.name, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
           prop.major, prop.minor, cu_dtype_name(e->dt), e->act_lp ? cu_dtype_name(e->dt) : "fp32",
           e->attn_mma ? "mma" : "fp32",
           e->fused_decoder == 2 ? "wgmma" : e->fused_decoder ? "fused" : "chunked");
  if ((rc = CU_CHECK(cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking))) < 0) goto fail;
  if ((rc = CU_CHECK(cudaStreamCreateWithFlags(&e->copy_stream, cudaStreamNonBlocking))) < 0)
    goto fail;
  /* Blocking-sync events: the waiting thread sleeps instead of spinning on a core that the
   * tokenizer threads can use; the wake-up latency is hidden by the batch queued behind. */
  for (int i = 0; i < ENC_MAX_IN_FLIGHT; i++)
    if ((rc = CU_CHECK(cudaEventCreateWithFlags(&e->slots[i].done, kEventFlags))) < 0) goto fail;
  if ((rc = CU_CHECK(cudaEventCreateWithFlags(&e->copied, kEventFlags))) < 0) goto fail;
  if ((rc = CU_CHECK_BLAS(cublasCreate(&e->blas))) < 0) goto fail;
  if ((rc = CU_CHECK_BLAS(cublasSetStream(e->blas, e->stream))) < 0) goto fail;
  /* fp32 stays fp32: no TF32 (the parity budget is 1e-4). */
  if ((rc = CU_CHECK_BLAS(cublasSetMathMode(e->blas, e->dt == CU_F32 ? CUBLAS_PEDANTIC_MATH
                                                                     : CUBLAS_DEFAULT_MATH))) < 0)
    goto fail;

  e->layers = (dev_layer *)calloc((size_t)(c->n_layers > 0 ? c->n_layers : 1), sizeof *e->layers);
  if (!e->layers) {
    rc = err_set(ERR_NOMEM, "out of memory for the CUDA encoder");
    goto fail;
  }
  b.base = NULL;
  b.off = 0;
  layout_weights(e, &b);
  e->weights_bytes = b.off;
  rc = CU_CHECK(cudaMalloc((void **)&e->d_weights, e->weights_bytes));
  if (rc < 0) {
    rc = err_wrap(rc, "allocating %.1f MB of device memory for the weights",
                  e->weights_bytes / 1e6);
    goto fail;
  }
  b.base = e->d_weights;
  b.off = 0;
  layout_weights(e, &b);
  if ((rc = upload_weights(e)) < 0) goto fail;
  /* cudaMemcpy from pageable memory may return before its DMA has landed, and e->stream does not
   * wait for the legacy default stream (cudaStreamNonBlocking): the weights must be on the device
   * before the first batch's kernels read them. */
  if ((rc = CU_CHECK(cudaDeviceSynchronize())) < 0) goto fail;

  b.base = NULL;
  b.off = 0;
  layout_work(e, &b);
  e->work_bytes = b.off;
  rc = CU_CHECK(cudaMalloc((void **)&e->d_work, e->work_bytes));
  if (rc < 0) {
    rc = err_wrap(rc, "allocating %.1f MB of device workspace (%d tokens, %d docs per batch)",
                  e->work_bytes / 1e6, opt->max_batch_tokens, opt->max_batch_docs);
    goto fail;
  }
  b.base = e->d_work;
  b.off = 0;
  layout_work(e, &b);
  if ((rc = CU_CHECK_BLAS(cublasSetWorkspace(e->blas, e->blas_ws, kBlasWorkspaceBytes))) < 0)
    goto fail;

  {
    const size_t N = (size_t)opt->max_batch_tokens, B = (size_t)opt->max_batch_docs;
    for (int i = 0; i < ENC_MAX_IN_FLIGHT; i++) {
      enc_slot *sl = &e->slots[i];
      if ((rc = CU_CHECK(cudaHostAlloc((void **)&sl->h_upload, (2 * N + 2 * B + 4) * 4,
                                       cudaHostAllocDefault))) < 0)
        goto fail;
      if ((rc = CU_CHECK(cudaHostAlloc((void **)&sl->h_indptr, (B + 1) * 8,
                                       cudaHostAllocDefault))) < 0)
        goto fail;
    }
    if ((rc = CU_CHECK(cudaHostAlloc((void **)&e->h_indptr, (B + 1) * 8, cudaHostAllocDefault))) < 0)
      goto fail;
    if ((rc = CU_CHECK(cudaHostAlloc((void **)&e->h_indices, (size_t)e->nnz_cap * 4,
                                     cudaHostAllocDefault))) < 0)
      goto fail;
    if ((rc = CU_CHECK(cudaHostAlloc((void **)&e->h_values, (size_t)e->nnz_cap * 4,
                                     cudaHostAllocDefault))) < 0)
      goto fail;
  }
  *out = e;
  return 0;
fail:
  enc_cuda_close(e);
  return rc;
}

/* Packs the batch into the slot's pinned buffer and queues its upload and all of its device work
 * on e->stream, ending with the copy of its indptr and the slot's event. Does not wait.
 * Windows (rows): the sequences are the attention segments, the rows the max-pool segments of
 * either decoder route; an unfinished row's max goes to e->carry, and a continuing row 0 takes
 * the max with it after the pool (k_maxpool_logits with carry as one logit row: the fused
 * kernel stores, rather than merges, a row that lies within one of its row groups, so pooled
 * must start at -inf). All on e->stream: stream order puts them between the batches' pools. */
extern "C" int enc_cuda_submit(enc_cuda *e, const enc_batch *batch, const enc_rows *rows) {
  SPX_ASSERT(e->submitted - e->collected < ENC_MAX_IN_FLIGHT); /* encoder.c counts too */
  const model *m = e->m;
  const model_config *c = &m->cfg;
  const int H = c->hidden, F = c->ffn, V = c->vocab, heads = c->n_heads;
  const int B = batch->n_docs;
  const int R = rows ? rows->n_rows : B;                        /* rows pooled */
  const int R_emit = R - (rows && rows->unfinished ? 1 : 0);   /* rows returned */
  const size_t Nmax = (size_t)e->opt.max_batch_tokens;
  const size_t Bmax = (size_t)e->opt.max_batch_docs;
  const cu_dtype dt = e->dt;
  const int lp = dt != CU_F32;
  cudaStream_t s = e->stream;

  /* The slot counts as taken only once everything is queued: after a failure encoder.c does not
   * count the batch either, and the caller closes the encoder (encoder.h). */
  enc_slot *sl = &e->slots[e->submitted % ENC_MAX_IN_FLIGHT];
  sl->n_docs = R_emit;
  sl->h_indptr[0] = 0;
  TRY(CU_CHECK(cudaSetDevice(e->opt.device)));
  if (B == 0) {
    TRY(CU_CHECK(cudaEventRecord(sl->done, s)));
    e->submitted++;
    return 0;
  }

  /* Pack the batch into the slot's pinned image of d_upload: ids | positions | offsets. The
   * previous batch of this slot has been collected, so its upload is over. */
  int32_t *h_ids = sl->h_upload, *h_pos = sl->h_upload + Nmax, *h_off = sl->h_upload + 2 * Nmax;
  int32_t *h_unit = h_off + Bmax + 1, *h_row_off = h_unit + 2;
  h_unit[0] = 0;
  h_unit[1] = 1;
  int N = 0, max_len = 0;
  h_off[0] = 0;
  for (int b = 0; b < B; b++) {
    const int len = batch->lengths[b];
    SPX_ASSERT(len >= 1 && (size_t)N + (size_t)len <= Nmax); /* encoder.c checked this */
    memcpy(h_ids + N, batch->ids[b], sizeof(int32_t) * (size_t)len);
    model_positions(e->m, batch->ids[b], len, h_pos + N);
    N += len;
    h_off[b + 1] = N;
    max_len = len > max_len ? len : max_len;
  }
  h_row_off[0] = 0;
  for (int r = 0, seq = 0; r < R; r++) {
    seq += rows ? rows->row_seqs[r] : 1;
    h_row_off[r + 1] = h_off[seq];
  }

  /* d_upload is shared by the slots: stream order puts this copy after the previous batch's
   * kernels. */
  TRY(CU_CHECK(cudaMemcpyAsync(e->d_upload, sl->h_upload, (2 * Nmax + Bmax + (size_t)R + 4) * 4,
                               cudaMemcpyHostToDevice, s)));

  /* GEMM operands: the dtype copies in fp16/bf16 mode, the fp32 tensors themselves in fp32. */
  const void *x_in = lp ? e->x_lp : (const void *)e->x;
  const void *ctx_in = lp ? e->ctx_lp : (const void *)e->ctx;

  TRY(embed_layernorm_cuda(e->d_ids, e->d_positions, N, e->word_emb, e->pos_emb, e->type_row,
                           e->emb_ln_g, e->emb_ln_b, c->ln_eps, H, e->x, e->x_lp, dt, s));
  if (e->act_lp) {
    /* The lp route: every layer GEMM writes dt; the QKV bias is added by the attention kernel
     * while it stages q, k, v, the other biases by the op that reads the GEMM's output. Residual
     * stream x and LayerNorm statistics stay fp32. */
    for (int l = 0; l < c->n_layers; l++) {
      const dev_layer *L = &e->layers[l];
      TRY(linear_cuda(e->x_lp, L->qkv_w, NULL, N, H, 3 * H, e->big_lp, 3 * H, dt, dt, e->blas, s));
      TRY(attention_mma_cuda(e->big_lp, dt, L->qkv_b, e->d_offsets, B, heads, H / heads,
                             e->ctx_lp, dt, max_len, s));
      TRY(linear_cuda(e->ctx_lp, L->o_w, NULL, N, H, H, e->tmp_lp, H, dt, dt, e->blas, s));
      TRY(residual_layernorm_cuda(e->tmp_lp, dt, L->o_b, e->x, L->attn_ln_g, L->attn_ln_b,
                                  c->ln_eps, N, H, e->x, e->x_lp, dt, s));
      TRY(linear_cuda(e->x_lp, L->ffn1_w, NULL, N, H, F, e->big_lp, F, dt, dt, e->blas, s));
      TRY(bias_gelu_lp_cuda(e->big_lp, L->ffn1_b, N, F, dt, s));
      TRY(linear_cuda(e->big_lp, L->ffn2_w, NULL, N, F, H, e->tmp_lp, H, dt, dt, e->blas, s));
      TRY(residual_layernorm_cuda(e->tmp_lp, dt, L->ffn2_b, e->x, L->out_ln_g, L->out_ln_b,
                                  c->ln_eps, N, H, e->x, e->x_lp, dt, s));
    }
  } else {
    const void *big_in = lp ? e->big_lp : (const void *)e->wide;
    for (int l = 0; l < c->n_layers; l++) {
      const dev_layer *L = &e->layers[l];
      TRY(linear_cuda(x_in, L->qkv_w, L->qkv_b, N, H, 3 * H, e->wide, 3 * H, CU_F32, dt, e->blas,
                      s));
      if (e->attn_mma)
        TRY(attention_mma_cuda(e->wide, CU_F32, NULL, e->d_offsets, B, heads, H / heads,
                               e->ctx_lp, dt, max_len, s));
      else
        TRY(attention_cuda(e->wide, e->d_offsets, B, heads, H / heads, NULL, e->ctx, e->ctx_lp,
                           dt, max_len, s));
      TRY(linear_cuda(ctx_in, L->o_w, NULL, N, H, H, e->tmp, H, CU_F32, dt, e->blas, s));
      TRY(residual_layernorm_cuda(e->tmp, CU_F32, L->o_b, e->x, L->attn_ln_g, L->attn_ln_b,
                                  c->ln_eps, N, H, e->x, e->x_lp, dt, s));
      TRY(linear_cuda(x_in, L->ffn1_w, NULL, N, H, F, e->wide, F, CU_F32, dt, e->blas, s));
      TRY(bias_gelu_cuda(e->wide, L->ffn1_b, N, F, e->big_lp, dt, s));
      TRY(linear_cuda(big_in, L->ffn2_w, NULL, N, F, H, e->tmp, H, CU_F32, dt, e->blas, s));
      TRY(residual_layernorm_cuda(e->tmp, CU_F32, L->ffn2_b, e->x, L->out_ln_g, L->out_ln_b,
                                  c->ln_eps, N, H, e->x, e->x_lp, dt, s));
    }
  }
  /* MLM head: tmp = LN(gelu(x . head_w^T + head_b)), fp32 on every route: rounding its GEMM and
   * GELU outputs in the lp route was the largest error the precision emulation found there
   * (splade-tiny fp16 max rel 0.00499 of the 0.005 bound, 0.00334 without) for ~2% of its
   * bytes. */
  TRY(linear_cuda(x_in, e->head_w, NULL, N, H, H, e->tmp, H, CU_F32, dt, e->blas, s));
  TRY(bias_gelu_cuda(e->tmp, e->head_b, N, H, NULL, dt, s));
  TRY(residual_layernorm_cuda(e->tmp, CU_F32, NULL, NULL, e->head_ln_g, e->head_ln_b, c->ln_eps,
                              N, H, e->tmp, e->tmp_lp, dt, s));
  const void *head_in = lp ? e->tmp_lp : (const void *)e->tmp;

  /* Decoder + max over each document's tokens (no bias: it is constant per term and added once
   * in sparsify): fused in one kernel, or cuBLAS in (Nb x Vb) blocks each max-pooled. */
  TRY(fill_cuda(e->pooled, (size_t)R * V, -INFINITY, s));
  /* The chunked decoder's logits: fp32, or in the lp route dt (half the bytes written and read;
   * the max of rounded logits is the rounded max). */
  const cu_dtype logits_type = e->act_lp ? dt : CU_F32;
  if (e->fused_decoder == 2)
    TRY(decoder_maxpool_wgmma_cuda(head_in, e->decoder_w, N, H, V, e->d_row_offsets, R, e->pooled,
                                   dt, s));
  else if (e->fused_decoder)
    TRY(decoder_maxpool_cuda(head_in, e->decoder_w, N, H, V, e->d_row_offsets, R, e->pooled, dt,
                             s));
  for (int t0 = 0; !e->fused_decoder && t0 < N; t0 += e->token_block) {
    const int n_rows = N - t0 < e->token_block ? N - t0 : e->token_block;
    const char *in = (const char *)head_in + (size_t)t0 * H * e->esz;
    for (int v0 = 0; v0 < V; v0 += CUTWIN_VOCAB_BLOCK) {
      const int vb = V - v0 < CUTWIN_VOCAB_BLOCK ? V - v0 : CUTWIN_VOCAB_BLOCK;
      const char *w = (const char *)e->decoder_w + (size_t)v0 * H * e->esz;
      TRY(linear_cuda(in, w, NULL, n_rows, H, vb, e->logits, CUTWIN_VOCAB_BLOCK, logits_type, dt,
                      e->blas, s));
      TRY(maxpool_logits_cuda(e->logits, logits_type, CUTWIN_VOCAB_BLOCK, t0, n_rows, v0, vb,
                              e->d_row_offsets, R, e->pooled, V, s));
    }
  }

  if (rows && rows->continues) /* row 0 = max(row 0, carry) */
    TRY(maxpool_logits_cuda(e->carry, CU_F32, V, 0, 1, 0, V, e->d_unit_offsets, 1, e->pooled, V,
                            s));
  if (rows && rows->unfinished) /* before sparsify turns the row into weights */
    TRY(CU_CHECK(cudaMemcpyAsync(e->carry, e->pooled + (size_t)(R - 1) * V,
                                 sizeof(float) * (size_t)V, cudaMemcpyDeviceToDevice, s)));
  if (R_emit > 0) { /* else h_indptr[0] = 0 says it all */
    TRY(sparsify_weights_cuda(e->pooled, e->decoder_b, R_emit, V, e->opt.threshold, e->opt.top_k,
                              e->row_nnz, NULL, s));
    TRY(row_offsets_cuda(e->row_nnz, R_emit, sl->indptr, s));
    TRY(sparsify_gather_cuda(e->pooled, R_emit, V, e->opt.threshold, sl->indptr, sl->indices,
                             sl->values, s));
    /* indptr comes back at the batch's end (to learn nnz); the entries in enc_cuda_collect. */
    TRY(CU_CHECK(cudaMemcpyAsync(sl->h_indptr, sl->indptr, sizeof(int64_t) * ((size_t)R_emit + 1),
                                 cudaMemcpyDeviceToHost, s)));
  }
  TRY(CU_CHECK(cudaEventRecord(sl->done, s)));
  e->submitted++;
  return 0;
}

/* Waits for the oldest batch's device work, then copies its entries on the copy stream (while
 * the next batch, already queued, computes). */
extern "C" int enc_cuda_collect(enc_cuda *e, enc_result *out) {
  SPX_ASSERT(e->collected < e->submitted);
  enc_slot *sl = &e->slots[e->collected % ENC_MAX_IN_FLIGHT];
  e->collected++;
  const int B = sl->n_docs;
  out->n_docs = B;
  out->indptr = e->h_indptr;
  out->indices = e->h_indices;
  out->values = e->h_values;
  TRY(CU_CHECK(cudaSetDevice(e->opt.device)));
  TRY(CU_CHECK(cudaEventSynchronize(sl->done)));
  const int64_t nnz = sl->h_indptr[B];
  if (nnz < 0 || nnz > e->nnz_cap)
    return err_set(ERR_DEVICE, "CUDA encoder: batch of %d docs produced %lld non-zeros "
                   "(capacity %lld): device state is corrupt", B, (long long)nnz,
                   (long long)e->nnz_cap);
  memcpy(e->h_indptr, sl->h_indptr, sizeof(int64_t) * ((size_t)B + 1));
  if (nnz > 0) {
    cudaStream_t c = e->copy_stream; /* the event has completed: no stream wait needed */
    TRY(CU_CHECK(cudaMemcpyAsync(e->h_indices, sl->indices, sizeof(int32_t) * (size_t)nnz,
                                 cudaMemcpyDeviceToHost, c)));
    TRY(CU_CHECK(cudaMemcpyAsync(e->h_values, sl->values, sizeof(float) * (size_t)nnz,
                                 cudaMemcpyDeviceToHost, c)));
    TRY(CU_CHECK(cudaEventRecord(e->copied, c)));
    TRY(CU_CHECK(cudaEventSynchronize(e->copied)));
  }
  return 0;
}

extern "C" const char *enc_cuda_describe(const enc_cuda *e) { return e->description; }

extern "C" void enc_cuda_close(enc_cuda *e) {
  if (!e) return;
  /* Best effort: errors here have nowhere to go, and a sticky context error must not stop the
   * host memory from being freed. */
  (void)cudaSetDevice(e->opt.device);
  if (e->stream) (void)cudaStreamSynchronize(e->stream);
  if (e->copy_stream) (void)cudaStreamSynchronize(e->copy_stream);
  if (e->blas) (void)cublasDestroy(e->blas);
  if (e->d_work) (void)cudaFree(e->d_work);
  if (e->d_weights) (void)cudaFree(e->d_weights);
  for (int i = 0; i < ENC_MAX_IN_FLIGHT; i++) {
    enc_slot *sl = &e->slots[i];
    if (sl->h_upload) (void)cudaFreeHost(sl->h_upload);
    if (sl->h_indptr) (void)cudaFreeHost(sl->h_indptr);
    if (sl->done) (void)cudaEventDestroy(sl->done);
  }
  if (e->h_indptr) (void)cudaFreeHost(e->h_indptr);
  if (e->h_indices) (void)cudaFreeHost(e->h_indices);
  if (e->h_values) (void)cudaFreeHost(e->h_values);
  if (e->copied) (void)cudaEventDestroy(e->copied);
  if (e->copy_stream) (void)cudaStreamDestroy(e->copy_stream);
  if (e->stream) (void)cudaStreamDestroy(e->stream);
  (void)cudaGetLastError();
  free(e->layers);
  free(e);
}
