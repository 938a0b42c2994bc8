/* export_meta: PATH.meta.json, the record that `spladex export` and `spladex queries` write
 * beside every file, so that nobody has to guess how a file was made (x100 or x51.2? special
 * tokens dropped? which model?). One JSON object, for example:
 *
 *   {"spladex": "0.9.0", "kind": "export", "format": "ciff", "path": "corpus.ciff",
 *    "source": "shards/", "model": "naver/splade-v3", "weights": "int", "quant_scale": 100,
 *    "quantization": "rint(float32(w * quant_scale)), ties to even; 0 left out",
 *    "drop_special": false, "dropped_terms": [], "max_length": 256, "threshold": 0, "top_k": 0,
 *    "vocab_size": 30522, "vectors": 1000, "nnz": 81234, "empty_vectors": 0}
 *
 * weights "float" means the stored float32 weights (csr, jsonl --weights float, queries jsonl);
 * quant_scale is then still recorded but was not applied. Written to PATH.meta.json.tmp and
 * published with atomic_publish (io/atomic_file.h), after the file it describes is complete.
 */
#ifndef SPLADEX_EXPORT_META_H
#define SPLADEX_EXPORT_META_H

#include <stdint.h>

typedef struct {
  const char *kind;           /* "export" or "queries" */
  const char *format;         /* "ciff", "jsonl", "csr", "anserini", "pisa", "jsonl-int" ... */
  const char *path;           /* the file described */
  const char *source;         /* the shard directory or the topics file */
  const char *model;          /* the model id (shards) or directory (queries) */
  int float_weights;          /* 1: float32 weights as stored; 0: quantized integers */
  double quant_scale;
  int drop_special;
  const char *const *dropped; /* (n_dropped) the vocabulary terms left out */
  int n_dropped;
  int max_length;
  double threshold;
  int top_k;
  int vocab_size;
  int64_t vectors;            /* documents or queries written */
  int64_t nnz;                /* terms written over all vectors */
  int64_t empty_vectors;      /* vectors written with no term (or a placeholder) */
} meta_info;

/* Writes path + ".meta.json" (through a .tmp file and atomic_publish). Returns 0, or ERR_IO /
 * ERR_NOMEM naming the file. */
int meta_write(const meta_info *m);

#endif
