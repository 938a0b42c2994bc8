/* cli: what the commands share -- option values, the model directory, the device.
 *
 * One parser per kind of option value (integers, numbers, sizes, --device, --precision,
 * --worker), so every command takes the same spellings and refuses a bad value with the same
 * message form: "OPTION 'VALUE': expected ...". One function opens a model directory's model
 * and tokenizer from the same resolved directory and checks that they agree. One function
 * opens the encoder on the device asked for, and one (cli_device_fallback) holds the rule of
 * `--device auto` when no CUDA device can be used.
 *
 * Every function records its message with err_set() and returns 0 or a negative ERR_* code;
 * on failure the outputs are left untouched unless said otherwise.
 */
#ifndef SPLADEX_CLI_H
#define SPLADEX_CLI_H

#include <stdint.h>

#include "encoder.h"
#include "model.h"
#include "tokenizer.h"

/* ---- option values ---- */

/* Parses value as a decimal integer in [lo, hi] into *out. opt is the option's name as the
 * user typed it ("--top-k"), for the message "--top-k 'x': expected an integer in [0, 10]".
 * 0 or ERR_ARG. */
int cli_parse_int(const char *opt, const char *value, int lo, int hi, int *out);

/* The same for a 64-bit count (--shard-size). 0 or ERR_ARG. */
int cli_parse_int64(const char *opt, const char *value, int64_t lo, int64_t hi, int64_t *out);

/* Parses value as a finite number x with lo < x <= hi (lo_open) or lo <= x <= hi (not lo_open)
 * into *out (as a float): "--threshold 'x': expected a number in [0, 1e+30]". 0 or ERR_ARG. */
int cli_parse_float(const char *opt, const char *value, double lo, int lo_open, double hi,
                    float *out);

/* Parses a size in bytes: a positive number with an optional K, M, G or T suffix (powers of
 * 1024; "Ki" and a trailing "B" are accepted: 512M, 2G, 1.5GiB, 4096), at least 1 byte and
 * below 9e18. "--memory 'x': expected a size such as 512M or 2G". 0 or ERR_ARG. */
int cli_parse_size(const char *opt, const char *value, int64_t *out);

/* Parses --worker I/N (0 <= I < N <= 1000000) into *index and *count. 0 or ERR_ARG. */
int cli_parse_worker(const char *value, int *index, int *count);

/* Parses --precision: fp32, fp16 or bf16. 0 or ERR_ARG. */
int cli_parse_precision(const char *value, enc_precision *out);

/* The name of a precision: "fp32", "fp16" or "bf16" (static storage). */
const char *cli_precision_name(enc_precision p);

/* ---- --device ---- */

typedef enum {
  CLI_DEVICE_AUTO = 0, /* CUDA when a device can be used, else the CPU (cli_device_fallback) */
  CLI_DEVICE_CPU,
  CLI_DEVICE_CUDA
} cli_device_kind;

typedef struct {
  cli_device_kind kind;
  int ordinal;      /* N of cuda:N, else 0 */
  const char *text; /* the value as given (borrowed from argv), for messages */
} cli_device;

/* Parses --device: auto, cpu, cuda or cuda:N (0 <= N <= 1024), the same values for every
 * command. "--device 'x': expected auto, cpu, cuda or cuda:N". 0 or ERR_ARG. */
int cli_parse_device(const char *value, cli_device *out);

/* The one rule of `--device auto` when the device cannot be used: rc is what opening (or
 * probing) the CUDA device returned. Under auto and rc == ERR_DEVICE, prints one loud line on
 * stderr, "WHO: WARNING: --device auto found no usable CUDA device (REASON); INSTEAD. Pass
 * --device cpu to accept the CPU, or --device cuda to require a GPU." (REASON the recorded
 * message), clears the error and returns 1: the caller goes on on the CPU. Otherwise returns 0
 * and the caller fails with rc. who: "spladex expand"; instead: "running on the CPU". */
int cli_device_fallback(const cli_device *d, int rc, const char *who, const char *instead);

/* For --device cuda[:N]: fails at once, before a model is loaded, when no CUDA device can be
 * used ("--device cuda: no CUDA device opened: REASON"); 0 for any other value (and for cuda when
 * a device exists). ERR_ARG for a bad value, ERR_DEVICE. */
int cli_require_device(const char *device);

/* ---- model, tokenizer, encoder ---- */

/* Opens the model and the tokenizer of a model directory (model.h: model_resolve_dir picks the
 * directory of config.json and the weights, once) and reads the vocabulary from that same
 * directory, so that the two always come from one encoder. Refuses, before any passage, a
 * vocabulary whose size differs from the model's: "DIR: the vocabulary has 30522 tokens but
 * the model 1000", and a tokenizer of the other family (RoBERTa needs byte-level BPE, BERT and
 * DistilBERT WordPiece). Returns 0 with *m and *t (the caller frees them with model_free() and
 * tok_free()), or an error code with both NULL. */
int cli_open_model(const char *dir, model **m, tok **t);

/* Opens only the tokenizer of PATH for `spladex tokenize`: a vocab.txt / tokenizer.json file,
 * the directory that model_resolve_dir() picks when PATH is a model directory, else the
 * directory PATH itself (a tokenizer without a model). Free with tok_free(). */
int cli_open_tokenizer(const char *path, tok **t);

/* Opens the encoder of m on the device of --device value `device` (cli_parse_device) with the
 * options in *opt (threads, limits...; its backend, device and precision are set here).
 * precision: the --precision value given (cli_parse_precision), or NULL for the default: fp16
 * on CUDA, fp32 on the CPU, which computes in fp32 only (another precision is an ERR_ARG).
 * `auto` tries CUDA when enc_cuda_probe() finds a device and otherwise, or when the device does
 * not open, falls back to the CPU under cli_device_fallback() (a loud line with the reason), who
 * naming the command ("spladex expand"). Returns 0 with *out (enc_close()) and *opt as opened,
 * or an error code with *out NULL. */
int cli_open_encoder(const char *who, const model *m, const char *device, const char *precision,
                     enc_options *opt, encoder **out);

#endif
