/* ops_cpu: the CPU twins of the encoder's device ops, one function per op.
 *
 * Every op here has (or will have) a CUDA launcher in cuda/ with the same arguments in the same
 * order plus a trailing stream; the tests compare the two. The CPU encoder (encoder_cpu.c) is the
 * composition of these ops, so the CPU backend is the oracle for every kernel.
 *
 * A batch is packed with no padding at all: the B documents' tokens are concatenated, document b
 * owns the rows [doc_offsets[b], doc_offsets[b+1]) of every (N, ...) activation, and attention
 * never crosses a document boundary. All matrices are fp32, row-major.
 *
 * Legend: N tokens in the batch (sum of lengths), B documents, T tokens of one document,
 * H hidden, F ffn, V vocab, P max positions, NH heads, D head dim (H = NH * D),
 * Vb a block of vocab terms, Nb a block of tokens.
 *
 * ops_linear and ops_attention call OpenBLAS, which threads inside unless set to one thread
 * (openblas_set_num_threads(1), as the CPU encoder does: it then calls them from several threads
 * at once, on disjoint outputs); the other ops are single-threaded. Ops that work per document or per row take
 * absolute offsets, so a caller parallelizes by handing each thread a sub-range of documents or
 * tokens (doc_offsets + first, count) with the same base pointers.
 * No op allocates memory; scratch comes from the caller.
 */
#ifndef SPLADEX_OPS_CPU_H
#define SPLADEX_OPS_CPU_H

#include <stddef.h>
#include <stdint.h>

/* out[t] = LayerNorm(word_emb[ids[t]] + pos_emb[positions[t]] + type_row) for t in [0, n).
 * type_row is token-type row 0 for BERT, NULL for DistilBERT. ids and positions must be in range
 * (the caller validates them). eps: the config's layer_norm_eps. */
void ops_embed_layernorm(const int32_t *ids,       /* (N) */
                         const int *positions,     /* (N) position of each token in its doc */
                         int n,                    /* N */
                         const float *word_emb,    /* (V, H) */
                         const float *pos_emb,     /* (P, H) */
                         const float *type_row,    /* (H) or NULL */
                         const float *gamma,       /* (H) */
                         const float *beta,        /* (H) */
                         float eps, int hidden,    /* H */
                         float *out);              /* (N, H) */

/* y[i, 0:out_features] = x[i, :] . w^T (+ bias) for i in [0, n): an HF Linear. The rows of y are
 * ldy floats apart (ldy >= out_features), so Q, K and V can be written side by side into one
 * (N, 3H) buffer. bias may be NULL (the bias is then fused into a later op). */
void ops_linear(const float *x,     /* (N, in_features) */
                const float *w,     /* (out_features, in_features), HF layout */
                const float *bias,  /* (out_features) or NULL */
                int n, int in_features, int out_features,
                float *y, int ldy); /* (N, ldy) */

/* In place: x = gelu(x + bias), erf GELU 0.5 * v * (1 + erf(v / sqrt(2))). bias may be NULL.
 * The erf is a rational approximation (max |error| 4.5e-7; see ops_cpu.c), not libm's erff. */
void ops_bias_gelu(float *x,          /* (N, F) */
                   const float *bias, /* (F) or NULL */
                   int n, int features);

/* out = LayerNorm(x + bias + residual) row by row. bias and residual may each be NULL.
 * out may alias x or residual (each row is read fully before it is written). */
void ops_residual_layernorm(const float *x,        /* (N, H) */
                            const float *bias,     /* (H) or NULL */
                            const float *residual, /* (N, H) or NULL */
                            const float *gamma,    /* (H) */
                            const float *beta,     /* (H) */
                            float eps, int n, int hidden,
                            float *out);           /* (N, H) */

/* Floats of scratch ops_attention needs (for one call, i.e. one thread), for documents of at most
 * max_len tokens. */
size_t ops_attention_scratch_floats(int max_len, int head_dim);

/* Multi-head self-attention of documents [0, n_docs) of the packed batch:
 * for document b with rows [s, e) = [doc_offsets[b], doc_offsets[b+1]) and each head h,
 *   out[s:e, h*D:(h+1)*D] = softmax(Q_h K_h^T / sqrt(D)) V_h
 * where row t of qkv holds q (H) | k (H) | v (H), biases already added. Only the document's own
 * tokens are attended (no padding exists). Offsets are absolute row indices into qkv and out, so
 * a thread may pass doc_offsets + first with a smaller n_docs. The output projection is not
 * applied here (ops_linear + ops_residual_layernorm do it). */
void ops_attention(const float *qkv,       /* (N, 3H) */
                   const int *doc_offsets, /* (n_docs + 1) absolute, ascending */
                   int n_docs, int n_heads, int head_dim,
                   float *scratch,         /* ops_attention_scratch_floats(max T, D) floats */
                   float *out);            /* (N, H) */

/* Running segmented max over documents of one block of raw decoder logits (no bias):
 *   pooled[b, v0 + j] = max(pooled[b, v0 + j], logits[t - t0, j])
 * for every token t in [t0, t0 + n_rows) that belongs to document b and j in [0, vb).
 * The block's rows are tokens t0 .. t0+n_rows-1 (absolute; the block may start and end inside a
 * document), its columns terms v0 .. v0+vb-1, rows ld floats apart. pooled must start at -INFINITY
 * (ops_fill) before the first block. Because log1p(relu(.)) is monotone and the decoder bias is
 * constant per term, max over raw logits then ops_sparsify_weights equals naver's
 * max_t log1p(relu(logit + bias)). */
void ops_maxpool_logits(const float *logits,    /* (n_rows, ld) */
                        int ld, int t0, int n_rows, int v0, int vb,
                        const int *doc_offsets, /* (n_docs + 1) absolute */
                        int n_docs,
                        float *pooled,          /* (B, V) */
                        int vocab);             /* V */

/* Running segmented sum (SpladePooling's pooling_strategy "sum") over documents of one block of
 * raw decoder logits: for every token t in [t0, t0 + n_rows) of document b and j in [0, vb),
 *   pooled[b, v0 + j] += w, w = log1p(relu(logits[t - t0, j] + decoder_bias[v0 + j]))
 * and log1p(w) instead of w when log1p_twice (activation_function "log1p_relu"). The bias comes
 * first here: a sum, unlike the max, does not commute with the activation. pooled must start
 * at 0 (ops_fill). Arguments otherwise as ops_maxpool_logits. */
void ops_sumpool_logits(const float *logits,      /* (n_rows, ld) */
                        int ld, int t0, int n_rows, int v0, int vb,
                        const int *doc_offsets,   /* (n_docs + 1) absolute */
                        int n_docs,
                        const float *decoder_bias, /* (V) */
                        int log1p_twice,
                        float *pooled,            /* (B, V) */
                        int vocab);               /* V */

/* Max-pooled raw logits to weights, in place on documents [0, n_docs), for the activations
 * ops_sparsify_weights does not apply itself: pooled[b, v] = log1p(log1p(relu(pooled[b, v] +
 * decoder_bias[v]))) ("log1p_relu"; exact, both functions being monotone). */
void ops_log1p_relu_weights(float *pooled,             /* (B, V) */
                            const float *decoder_bias, /* (V) */
                            int n_docs, int vocab);

/* x[i] = value for i in [0, n). */
void ops_fill(float *x, size_t n, float value);

/* Pruning, first pass, in place on documents [0, n_docs):
 *   pooled[b, v] = w = log1p(relu(pooled[b, v] + decoder_bias[v]))
 * (decoder_bias NULL: pooled already holds the weights w, as ops_sumpool_logits and
 * ops_log1p_relu_weights leave them)
 * then every term that is not kept is set to 0: kept means w > threshold (threshold >= 0) and,
 * when top_k > 0, among the top_k largest w of the row, ties broken in favour of the lower term
 * id. row_nnz[b] = number of kept terms (<= top_k when top_k > 0). scratch: V floats. */
void ops_sparsify_weights(float *pooled,             /* (B, V) in: max raw logits, out: weights */
                          const float *decoder_bias, /* (V) */
                          int n_docs, int vocab, float threshold, int top_k,
                          int32_t *row_nnz,          /* (B) */
                          float *scratch);           /* (V) */

/* Pruning, second pass: writes the kept terms (w > threshold after ops_sparsify_weights) of
 * documents [0, n_docs) into CSR arrays at the absolute positions indptr[b] .. indptr[b+1]-1
 * (the caller makes indptr the prefix sum of row_nnz), term ids ascending. */
void ops_sparsify_gather(const float *weights,  /* (B, V) */
                         int n_docs, int vocab, float threshold,
                         const int64_t *indptr, /* (B + 1) */
                         int32_t *indices,      /* (nnz) */
                         float *values);        /* (nnz) */

#endif
