/* cli: what the commands share (see cli.h). The parsers take the whole value ("12abc" is not 12)
 * and say what they expected in one form; the model directory is resolved once, by
 * model_resolve_dir, and the tokenizer is read from that same directory. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cuda_module.h"
#include "err.h"

int cli_parse_int(const char *opt, const char *value, int lo, int hi, int *out) {
  int64_t x;
  int rc = cli_parse_int64(opt, value, lo, hi, &x);
  if (rc == 0) *out = (int)x;
  return rc;
}

int cli_parse_int64(const char *opt, const char *value, int64_t lo, int64_t hi, int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long x = strtoll(value, &end, 10);
  if (errno || end == value || *end || x < lo || x > hi)
    return err_set(ERR_ARG, "%s '%s': expected an integer in [%lld, %lld]", opt, value,
                   (long long)lo, (long long)hi);
  *out = (int64_t)x;
  return 0;
}

int cli_parse_float(const char *opt, const char *value, double lo, int lo_open, double hi,
                    float *out) {
  char *end = NULL;
  errno = 0;
  double x = strtod(value, &end);
  /* !(x >= lo) also refuses NaN */
  if (errno || end == value || *end || !(x >= lo) || (lo_open && x == lo) || x > hi)
    return err_set(ERR_ARG, "%s '%s': expected a number in %c%g, %g]", opt, value,
                   lo_open ? '(' : '[', lo, hi);
  *out = (float)x;
  return 0;
}

int cli_parse_size(const char *opt, const char *value, int64_t *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(value, &end);
  if (end == value || errno || !(v > 0)) goto bad;
  double unit = 1;
  switch (*end) {
    case 'k': case 'K': unit = 1024.0, end++; break;
    case 'm': case 'M': unit = 1024.0 * 1024, end++; break;
    case 'g': case 'G': unit = 1024.0 * 1024 * 1024, end++; break;
    case 't': case 'T': unit = 1024.0 * 1024 * 1024 * 1024, end++; break;
    default: break;
  }
  if (*end == 'i' && unit > 1) end++;
  if (*end == 'B' || *end == 'b') end++;
  if (*end || v * unit > 9e18 || v * unit < 1) goto bad;
  *out = (int64_t)(v * unit);
  return 0;
bad:
  return err_set(ERR_ARG, "%s '%s': expected a size such as 512M or 2G", opt, value);
}

int cli_parse_worker(const char *value, int *index, int *count) {
  char *end = NULL;
  errno = 0;
  long i = strtol(value, &end, 10);
  if (errno || end == value || *end != '/') goto bad;
  const char *rest = end + 1;
  long n = strtol(rest, &end, 10);
  if (errno || end == rest || *end || n < 1 || n > 1000000 || i < 0 || i >= n) goto bad;
  *index = (int)i;
  *count = (int)n;
  return 0;
bad:
  return err_set(ERR_ARG, "--worker '%s': expected I/N with 0 <= I < N", value);
}

int cli_parse_precision(const char *value, enc_precision *out) {
  if (!strcmp(value, "fp32")) *out = ENC_FP32;
  else if (!strcmp(value, "fp16")) *out = ENC_FP16;
  else if (!strcmp(value, "bf16")) *out = ENC_BF16;
  else return err_set(ERR_ARG, "--precision '%s': expected fp16, bf16 or fp32", value);
  return 0;
}

const char *cli_precision_name(enc_precision p) {
  return p == ENC_FP16 ? "fp16" : p == ENC_BF16 ? "bf16" : "fp32";
}

int cli_parse_device(const char *value, cli_device *out) {
  cli_device d = {CLI_DEVICE_AUTO, 0, value};
  if (!strcmp(value, "auto")) {
    d.kind = CLI_DEVICE_AUTO;
  } else if (!strcmp(value, "cpu")) {
    d.kind = CLI_DEVICE_CPU;
  } else if (!strncmp(value, "cuda", 4) && (value[4] == '\0' || value[4] == ':')) {
    d.kind = CLI_DEVICE_CUDA;
    if (value[4] == ':') {
      char *end = NULL;
      errno = 0;
      long n = strtol(value + 5, &end, 10);
      /* digits only: strtol would take " 1" or "+1" */
      if (value[5] < '0' || value[5] > '9' || *end || errno || n > 1024) goto bad;
      d.ordinal = (int)n;
    }
  } else {
    goto bad;
  }
  *out = d;
  return 0;
bad:
  return err_set(ERR_ARG, "--device '%s': expected auto, cpu, cuda or cuda:N", value);
}

int cli_device_fallback(const cli_device *d, int rc, const char *who, const char *instead) {
  if (d->kind != CLI_DEVICE_AUTO || rc != ERR_DEVICE) return 0;
  fprintf(stderr, "%s: WARNING: --device auto found no usable CUDA device (%s); %s. Pass "
          "--device cpu to accept the CPU, or --device cuda to require a GPU.\n", who, err_msg(),
          instead);
  err_clear();
  return 1;
}

int cli_open_model(const char *dir, model **m_out, tok **t_out) {
  model *m = NULL;
  tok *t = NULL;
  int rc;
  *m_out = NULL;
  *t_out = NULL;
  if ((rc = model_load(dir, &m)) < 0) goto fail;
  /* m->dir is model_resolve_dir(dir): the vocabulary of the encoder whose weights were read */
  if ((rc = tok_open(m->dir, &t)) < 0) goto fail;
  if (tok_vocab_size(t) != m->cfg.vocab) {
    rc = err_set(ERR_FORMAT, "%s: the vocabulary has %d tokens but the model %d", dir,
                 tok_vocab_size(t), m->cfg.vocab);
    goto fail;
  }
  /* RoBERTa's ids come from its byte-level BPE, BERT's from WordPiece: another tokenizer's ids
   * (e.g. a vocab.txt beside RoBERTa weights, read first) would be encoded without a word */
  if (tok_is_byte_level_bpe(t) != (m->cfg.arch == MODEL_ROBERTA)) {
    rc = err_set(ERR_FORMAT, "%s: the model is %s but its tokenizer (in %s) is %s", dir,
                 m->cfg.arch == MODEL_ROBERTA ? "RoBERTa, which needs a byte-level BPE tokenizer.json"
                                              : "BERT / DistilBERT, which needs a WordPiece vocabulary",
                 m->dir, tok_is_byte_level_bpe(t) ? "byte-level BPE" : "WordPiece");
    goto fail;
  }
  *m_out = m;
  *t_out = t;
  return 0;
fail:
  tok_free(t);
  model_free(m);
  return rc;
}

int cli_open_tokenizer(const char *path, tok **t) {
  char resolved[4096];
  struct stat st;
  *t = NULL;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
      model_resolve_dir(path, resolved, sizeof resolved) == 0)
    return tok_open(resolved, t);
  err_clear(); /* no config.json anywhere: a tokenizer without a model */
  return tok_open(path, t);
}

int cli_require_device(const char *device) {
  cli_device d;
  int rc = cli_parse_device(device, &d);
  if (rc < 0 || d.kind != CLI_DEVICE_CUDA) return rc;
  char why[CUDA_MODULE_WHY_MAX];
  if (!enc_cuda_probe(why, sizeof why)) return err_set(ERR_DEVICE, "--device %s: %s", device, why);
  return 0;
}

int cli_open_encoder(const char *who, const model *m, const char *device, const char *precision,
                     enc_options *opt, encoder **out) {
  cli_device d;
  enc_precision given = ENC_FP32;
  int rc;
  *out = NULL;
  if ((rc = cli_parse_device(device, &d)) < 0) return rc;
  if (precision && (rc = cli_parse_precision(precision, &given)) < 0) return rc;
  /* auto probes first (--device cpu never loads the CUDA libraries); a fallback is said loudly */
  char why[CUDA_MODULE_WHY_MAX];
  if (d.kind == CLI_DEVICE_CUDA || (d.kind == CLI_DEVICE_AUTO && enc_cuda_probe(why, sizeof why))) {
    opt->backend = ENC_CUDA;
    opt->device = d.ordinal;
    opt->precision = precision ? given : ENC_FP16;
    rc = enc_open(m, opt, out);
    if (rc == 0) return 0;
    if (!cli_device_fallback(&d, rc, who, "running on the CPU")) return rc;
  } else if (d.kind == CLI_DEVICE_AUTO) {
    cli_device_fallback(&d, err_set(ERR_DEVICE, "%s", why), who, "running on the CPU");
  }
  opt->backend = ENC_CPU;
  opt->device = 0;
  opt->precision = precision ? given : ENC_FP32;
  if (opt->precision != ENC_FP32)
    return err_set(ERR_ARG, "--precision %s: the CPU encoder computes in fp32 only", precision);
  return enc_open(m, opt, out);
}
