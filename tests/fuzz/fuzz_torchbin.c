/* fuzz_torchbin: the torch zip reader and restricted unpickler (io/torchbin.c, tb_parse) on
 * arbitrary bytes. Every tensor of an accepted archive must be fully readable with nbytes
 * matching its shape; nothing outside the allowed globals may be executed (there is nothing to
 * execute: a refusal is an error with a message). */
#include <stdint.h>
#include <stddef.h>

#include "fuzz_common.h"
#include "torchbin.h"

static int fuzz_torchbin(const uint8_t *data, size_t size) {
  tb_file *t = NULL;
  err_clear();
  int rc = tb_parse("fuzz.bin", data, size, &t);
  FUZZ_REQUIRE_MESSAGE(rc);
  FUZZ_REQUIRE((rc == 0) == (t != NULL));
  if (rc == 0)
    for (size_t i = 0; i < tb_count(t); i++) fuzz_check_tensor(tb_at(t, i));
  tb_free(t);
  return rc;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_torchbin(data, size);
  return 0;
}
#endif
