/* export_meta: the PATH.meta.json record (see export_meta.h), written with cJSON. */
#include "export_meta.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "err.h"

int meta_write(const meta_info *m) {
  int rc = 0;
  cJSON *root = NULL;
  char *text = NULL, *path = NULL, *tmp = NULL;
  FILE *f = NULL;
  size_t n = strlen(m->path);
  path = malloc(n + sizeof ".meta.json");
  tmp = malloc(n + sizeof ".meta.json.tmp");
  if (!path || !tmp) goto nomem;
  snprintf(path, n + sizeof ".meta.json", "%s.meta.json", m->path);
  snprintf(tmp, n + sizeof ".meta.json.tmp", "%s.meta.json.tmp", m->path);
  if (!(root = cJSON_CreateObject())) goto nomem;
  if (!cJSON_AddStringToObject(root, "spladex", SPLADEX_VERSION) ||
      !cJSON_AddStringToObject(root, "kind", m->kind) ||
      !cJSON_AddStringToObject(root, "format", m->format) ||
      !cJSON_AddStringToObject(root, "path", m->path) ||
      !cJSON_AddStringToObject(root, "source", m->source ? m->source : "") ||
      !cJSON_AddStringToObject(root, "model", m->model ? m->model : "") ||
      !cJSON_AddStringToObject(root, "weights", m->float_weights ? "float" : "int") ||
      !cJSON_AddNumberToObject(root, "quant_scale", m->quant_scale) ||
      !cJSON_AddStringToObject(root, "quantization",
                               m->float_weights
                                   ? "none: the float32 weights as stored"
                                   : "rint(float32(w * quant_scale)), ties to even; 0 left out") ||
      !cJSON_AddBoolToObject(root, "drop_special", m->drop_special))
    goto nomem;
  cJSON *dropped = cJSON_AddArrayToObject(root, "dropped_terms");
  if (!dropped) goto nomem;
  for (int i = 0; i < m->n_dropped; i++) {
    cJSON *s = cJSON_CreateString(m->dropped[i]);
    if (!s || !cJSON_AddItemToArray(dropped, s)) {
      cJSON_Delete(s);
      goto nomem;
    }
  }
  if (!cJSON_AddNumberToObject(root, "max_length", m->max_length) ||
      !cJSON_AddNumberToObject(root, "threshold", m->threshold) ||
      !cJSON_AddNumberToObject(root, "top_k", m->top_k) ||
      !cJSON_AddNumberToObject(root, "vocab_size", m->vocab_size) ||
      !cJSON_AddNumberToObject(root, "vectors", (double)m->vectors) ||
      !cJSON_AddNumberToObject(root, "nnz", (double)m->nnz) ||
      !cJSON_AddNumberToObject(root, "empty_vectors", (double)m->empty_vectors))
    goto nomem;
  if (!(text = cJSON_Print(root))) goto nomem;
  if (!(f = fopen(tmp, "w"))) {
    rc = err_set(ERR_IO, "%s: %s", tmp, strerror(errno));
    goto fail;
  }
  if (fputs(text, f) == EOF || fputc('\n', f) == EOF) {
    rc = err_set(ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    goto fail;
  }
  int closed = fclose(f);
  f = NULL;
  if (closed) {
    rc = err_set(ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    goto fail;
  }
  rc = atomic_publish(tmp, path); /* fsync, rename, fsync the directory; tmp is gone either way */
  goto done;
nomem:
  rc = err_set(ERR_NOMEM, "%s.meta.json: out of memory", m->path);
fail:
  if (f) fclose(f);
  if (tmp) remove(tmp);
done:
  cJSON_free(text);
  cJSON_Delete(root);
  free(path);
  free(tmp);
  return rc;
}
