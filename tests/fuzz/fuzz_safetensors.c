/* fuzz_safetensors: the safetensors header parser (io/safetensors.c, st_parse) on arbitrary bytes.
 * Every tensor of an accepted file must lie inside the buffer with nbytes matching its shape. */
#include <stdint.h>
#include <stddef.h>

#include "fuzz_common.h"
#include "safetensors.h"

static int fuzz_safetensors(const uint8_t *data, size_t size) {
  st_file *s = NULL;
  err_clear();
  int rc = st_parse("fuzz.safetensors", data, size, &s);
  FUZZ_REQUIRE_MESSAGE(rc);
  FUZZ_REQUIRE((rc == 0) == (s != NULL));
  if (rc == 0) {
    for (size_t i = 0; i < st_count(s); i++) {
      const tensor_ref *t = st_at(s, i);
      fuzz_check_tensor(t);
      if (t->nbytes) {
        const uint8_t *p = t->data;
        FUZZ_REQUIRE(p >= data && p + t->nbytes <= data + size);
      }
    }
  }
  st_free(s);
  return rc;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_safetensors(data, size);
  return 0;
}
#endif
