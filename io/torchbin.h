/* torchbin: reads a torch zip archive (torch.save since 1.6, e.g. HF pytorch_model.bin) that is
 * already in memory, without executing anything.
 *
 * The zip central directory is parsed here (zip64 when needed; stored or deflated entries), every
 * offset checked against the file size and CRC-32 verified. PREFIX/data.pkl is run through a
 * restricted unpickler that knows only what a state dict uses: protocol 2-5 opcodes for dicts,
 * tuples, lists, ints, bools, None and strings; the globals collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 and the storage types torch.{Float,Half,BFloat16,Long,Int}Storage;
 * persistent ids ('storage', type, key, location, numel) naming PREFIX/data/<key>. Any other
 * global or opcode is refused with ERR_FORMAT naming it. A tensor must be contiguous and lie
 * inside its storage. */
#ifndef SPLADEX_TORCHBIN_H
#define SPLADEX_TORCHBIN_H

#include <stddef.h>
#include <stdint.h>

#include "tensorfile.h"

typedef struct tb_file tb_file;

/* Parses the size bytes at data (the whole file; borrowed, must outlive the result: stored
 * entries are referenced in place, deflated ones are inflated into buffers the tb_file owns).
 * path only names the file in messages. Returns 0 and *out, or ERR_FORMAT / ERR_NOMEM with a
 * message naming the file. The caller frees with tb_free(). */
int tb_parse(const char *path, const uint8_t *data, size_t size, tb_file **out);

/* Number of tensors (state dict entries, in file order), and the i-th (borrowed). */
size_t tb_count(const tb_file *t);
const tensor_ref *tb_at(const tb_file *t, size_t i);

/* Frees the table and any inflated buffers. tb_free(NULL) is a no-op. */
void tb_free(tb_file *t);

#endif
