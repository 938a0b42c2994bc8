/* test_cli: host/cli.h, the code the commands share. Every parser on good and bad values (one
 * message form), the --device rule of `auto`, the --format ids truncation rule, and
 * cli_open_model on model directories built here from the fixtures of
 * scripts/gen_model_fixtures.py: one holding an encoder both at its top level and under
 * document_0_MLMTransformer/ (the vocabulary must come from where the weights come from), one
 * whose vocabulary does not match its model (refused at open, before any passage). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "err.h"

#define BERT_VOCAB "tests/fixtures/tokenizer/vocab.txt"   /* bert-base-uncased, 30522 tokens */
#define DOC_MODEL "tests/fixtures/models/distilbert-st"   /* DistilBERT, vocab 1000 */
#define TOP_MODEL "tests/fixtures/models/bert-untied-st"  /* BERT, vocab 1000 */

static int message_is(const char *want) {
  if (!strcmp(err_msg(), want)) return 1;
  fprintf(stderr, "  message '%s'\n  wanted  '%s'\n", err_msg(), want);
  return 0;
}

static void test_numbers(void) {
  int v = -1;
  int64_t w = -1;
  float f = -1;
  CHECK(cli_parse_int("--top-k", "12", 0, 100, &v) == 0 && v == 12);
  CHECK(cli_parse_int("--top-k", "0", 0, 100, &v) == 0 && v == 0);
  CHECK(cli_parse_int("--top-k", "2147483647", 0, INT_MAX, &v) == 0 && v == INT_MAX);
  v = 7;
  const char *bad[] = {"", "x", "12x", "1.5", "101", "-1", "99999999999999999999", " "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char want[128];
    snprintf(want, sizeof want, "--top-k '%s': expected an integer in [0, 100]", bad[i]);
    CHECK(cli_parse_int("--top-k", bad[i], 0, 100, &v) == ERR_ARG && message_is(want) && v == 7);
  }
  CHECK(cli_parse_int64("--shard-size", "1099511627776", 1, (int64_t)1 << 40, &w) == 0 &&
        w == (int64_t)1 << 40);
  CHECK(cli_parse_int64("--shard-size", "0", 1, (int64_t)1 << 40, &w) == ERR_ARG &&
        message_is("--shard-size '0': expected an integer in [1, 1099511627776]"));

  CHECK(cli_parse_float("--threshold", "0", 0, 0, 1e30, &f) == 0 && f == 0.0f);
  CHECK(cli_parse_float("--threshold", "0.25", 0, 0, 1e30, &f) == 0 && f == 0.25f);
  CHECK(cli_parse_float("--threshold", "-1", 0, 0, 1e30, &f) == ERR_ARG &&
        message_is("--threshold '-1': expected a number in [0, 1e+30]"));
  CHECK(cli_parse_float("--threshold", "nan", 0, 0, 1e30, &f) == ERR_ARG);
  CHECK(cli_parse_float("--threshold", "1e31", 0, 0, 1e30, &f) == ERR_ARG);
  CHECK(cli_parse_float("--threshold", "0.1x", 0, 0, 1e30, &f) == ERR_ARG);
  CHECK(cli_parse_float("--quant-scale", "51.2", 0, 1, 1e9, &f) == 0 && f == 51.2f);
  CHECK(cli_parse_float("--quant-scale", "0", 0, 1, 1e9, &f) == ERR_ARG &&
        message_is("--quant-scale '0': expected a number in (0, 1e+09]"));
  CHECK(f == 51.2f);
}

static void test_sizes(void) {
  int64_t s = -1;
  CHECK(cli_parse_size("--memory", "4096", &s) == 0 && s == 4096);
  CHECK(cli_parse_size("--memory", "512M", &s) == 0 && s == (int64_t)512 << 20);
  CHECK(cli_parse_size("--memory", "2G", &s) == 0 && s == (int64_t)2 << 30);
  CHECK(cli_parse_size("--memory", "2g", &s) == 0 && s == (int64_t)2 << 30);
  CHECK(cli_parse_size("--memory", "1.5GiB", &s) == 0 && s == (int64_t)3 << 29);
  CHECK(cli_parse_size("--memory", "3KB", &s) == 0 && s == 3072);
  CHECK(cli_parse_size("--memory", "1T", &s) == 0 && s == (int64_t)1 << 40);
  s = 5;
  const char *bad[] = {"", "lots", "0", "-1G", "2X", "2GG", "0.5", "1e19"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char want[128];
    snprintf(want, sizeof want, "--memory '%s': expected a size such as 512M or 2G", bad[i]);
    CHECK(cli_parse_size("--memory", bad[i], &s) == ERR_ARG && message_is(want) && s == 5);
  }
}

static void test_worker_precision(void) {
  int i = -1, n = -1;
  CHECK(cli_parse_worker("0/1", &i, &n) == 0 && i == 0 && n == 1);
  CHECK(cli_parse_worker("3/8", &i, &n) == 0 && i == 3 && n == 8);
  const char *bad[] = {"", "1", "8/8", "-1/2", "1/0", "a/2", "1/2x", "1/"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    char want[128];
    snprintf(want, sizeof want, "--worker '%s': expected I/N with 0 <= I < N", bad[k]);
    CHECK(cli_parse_worker(bad[k], &i, &n) == ERR_ARG && message_is(want));
  }
  CHECK(i == 3 && n == 8);

  enc_precision p = ENC_FP32;
  CHECK(cli_parse_precision("fp16", &p) == 0 && p == ENC_FP16);
  CHECK(cli_parse_precision("bf16", &p) == 0 && p == ENC_BF16);
  CHECK(cli_parse_precision("fp32", &p) == 0 && p == ENC_FP32);
  CHECK(cli_parse_precision("FP16", &p) == ERR_ARG &&
        message_is("--precision 'FP16': expected fp16, bf16 or fp32") && p == ENC_FP32);
  CHECK(!strcmp(cli_precision_name(ENC_FP16), "fp16") &&
        !strcmp(cli_precision_name(ENC_BF16), "bf16") &&
        !strcmp(cli_precision_name(ENC_FP32), "fp32"));
}

static void test_device(void) {
  cli_device d;
  CHECK(cli_parse_device("auto", &d) == 0 && d.kind == CLI_DEVICE_AUTO && d.ordinal == 0);
  CHECK(cli_parse_device("cpu", &d) == 0 && d.kind == CLI_DEVICE_CPU);
  CHECK(cli_parse_device("cuda", &d) == 0 && d.kind == CLI_DEVICE_CUDA && d.ordinal == 0);
  CHECK(cli_parse_device("cuda:3", &d) == 0 && d.kind == CLI_DEVICE_CUDA && d.ordinal == 3 &&
        !strcmp(d.text, "cuda:3"));
  const char *bad[] = {"", "gpu", "GPU", "cuda:", "cuda:x", "cuda0", "cuda:-1", "cuda:1025",
                       "cuda: 1", "cuda:1x", "autox", "cpu:0"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char want[128];
    snprintf(want, sizeof want, "--device '%s': expected auto, cpu, cuda or cuda:N", bad[i]);
    CHECK(cli_parse_device(bad[i], &d) == ERR_ARG && message_is(want));
    CHECK(d.kind == CLI_DEVICE_CUDA && d.ordinal == 3); /* untouched */
  }

  /* auto falls back to the CPU on ERR_DEVICE only, with the error cleared; cpu and cuda never */
  cli_device autod = {CLI_DEVICE_AUTO, 0, "auto"}, cuda = {CLI_DEVICE_CUDA, 0, "cuda"};
  err_set(ERR_DEVICE, "no device here");
  CHECK(cli_device_fallback(&autod, ERR_DEVICE, "test_cli", "using the CPU") == 1);
  CHECK(err_msg()[0] == '\0');
  err_set(ERR_DEVICE, "no device here");
  CHECK(cli_device_fallback(&cuda, ERR_DEVICE, "test_cli", "using the CPU") == 0);
  CHECK(message_is("no device here"));
  err_set(ERR_NOMEM, "out of memory");
  CHECK(cli_device_fallback(&autod, ERR_NOMEM, "test_cli", "using the CPU") == 0);
  CHECK(message_is("out of memory"));
}

static void test_truncate_ids(void) {
  int32_t ids[6] = {101, 7, 8, 9, 10, -1};
  CHECK(tok_truncate_ids(ids, 5, 102, 8) == 5 && ids[4] == 10); /* short enough: untouched */
  CHECK(tok_truncate_ids(ids, 5, 102, 5) == 5 && ids[4] == 10);
  CHECK(tok_truncate_ids(ids, 9, 102, 4) == 4 && ids[0] == 101 && ids[2] == 8 && ids[3] == 102 &&
        ids[4] == 10);
  CHECK(tok_truncate_ids(ids, 9, 55, 0) == 9); /* 0: no limit */
}

/* ---- model directories ---- */

static int copy_lines(const char *from, const char *to, int lines, const char *extra) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  char line[512];
  int n = 0, ok = in && out;
  while (ok && n < lines && fgets(line, sizeof line, in)) {
    fputs(line, out);
    n++;
  }
  if (ok && extra) fprintf(out, "%s\n", extra);
  if (in) fclose(in);
  if (out && fclose(out)) ok = 0;
  return ok && n == lines;
}

static int link_model(const char *fixture, const char *dir) {
  char target[PATH_MAX], link[PATH_MAX + 64];
  const char *files[] = {"config.json", "model.safetensors"};
  for (int i = 0; i < 2; i++) {
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s/%s", fixture, files[i]);
    if (!realpath(rel, target)) return 0;
    snprintf(link, sizeof link, "%s/%s", dir, files[i]);
    if (symlink(target, link)) return 0;
  }
  return 1;
}

static void test_open_model(void) {
  char root[] = "/tmp/spladex-test-cli-XXXXXX";
  if (!mkdtemp(root)) {
    CHECK(0);
    return;
  }
  char both[128], doc[256], vocab[512], bad[128];
  snprintf(both, sizeof both, "%s/both", root);
  snprintf(doc, sizeof doc, "%s/document_0_MLMTransformer", both);
  snprintf(bad, sizeof bad, "%s/mismatch", root);
  CHECK(mkdir(both, 0755) == 0 && mkdir(doc, 0755) == 0 && mkdir(bad, 0755) == 0);

  /* both/: a BERT (vocab 1000) at the top with a vocabulary whose id 999 is "hello", and the
   * DistilBERT (vocab 1000) under document_0_MLMTransformer/ with bert-base's first 1000
   * tokens, where id 999 is "!" and "hello" is unknown. */
  CHECK(link_model(TOP_MODEL, both) && link_model(DOC_MODEL, doc));
  snprintf(vocab, sizeof vocab, "%s/vocab.txt", both);
  CHECK(copy_lines(BERT_VOCAB, vocab, 999, "hello"));
  snprintf(vocab, sizeof vocab, "%s/vocab.txt", doc);
  CHECK(copy_lines(BERT_VOCAB, vocab, 1000, NULL));

  model *m = NULL;
  tok *t = NULL;
  int rc = cli_open_model(both, &m, &t);
  if (rc) fprintf(stderr, "cli_open_model(%s): %s\n", both, err_msg());
  CHECK(rc == 0 && m && t);
  if (m && t) {
    /* the document encoder's weights, and its vocabulary, not the top level's */
    CHECK(m->cfg.arch == MODEL_DISTILBERT && !strcmp(m->dir, doc));
    CHECK(tok_vocab_size(t) == 1000 && tok_lookup(t, "hello") == -1 &&
          !strcmp(tok_token(t, 999), "!"));
  }
  tok_free(t);
  model_free(m);

  /* spladex tokenize --model both/: the same vocabulary */
  t = NULL;
  CHECK(cli_open_tokenizer(both, &t) == 0 && t && tok_lookup(t, "hello") == -1);
  tok_free(t);
  /* a vocabulary file, or a directory with a tokenizer and no model */
  t = NULL;
  CHECK(cli_open_tokenizer(vocab, &t) == 0 && t && tok_vocab_size(t) == 1000);
  tok_free(t);
  t = NULL;
  CHECK(cli_open_tokenizer("tests/fixtures/tokenizer", &t) == 0 && t &&
        tok_vocab_size(t) == 30522);
  tok_free(t);
  t = NULL;
  CHECK(cli_open_tokenizer("/nonexistent-spladex-dir", &t) == ERR_IO && t == NULL);

  /* mismatch/: a 1000-token model with bert-base's 30522-token vocabulary: refused at open */
  CHECK(link_model(DOC_MODEL, bad));
  snprintf(vocab, sizeof vocab, "%s/vocab.txt", bad);
  CHECK(copy_lines(BERT_VOCAB, vocab, 30522, NULL));
  m = (model *)1;
  t = (tok *)1;
  rc = cli_open_model(bad, &m, &t);
  char want[PATH_MAX + 64];
  snprintf(want, sizeof want, "%s: the vocabulary has 30522 tokens but the model 1000", bad);
  CHECK(rc == ERR_FORMAT && message_is(want) && m == NULL && t == NULL);

  /* a model directory without a vocabulary */
  snprintf(vocab, sizeof vocab, "%s/vocab.txt", doc);
  CHECK(unlink(vocab) == 0);
  rc = cli_open_model(both, &m, &t);
  CHECK(rc == ERR_IO && strstr(err_msg(), "document_0_MLMTransformer: no vocab.txt") && !m && !t);

  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  CHECK(system(cmd) == 0);
}

int main(void) {
  const char *source = getenv("SPLADEX_SOURCE_DIR");
  if (source && chdir(source) != 0) {
    fprintf(stderr, "test_cli: cannot chdir to %s\n", source);
    return 1;
  }
  test_numbers();
  test_sizes();
  test_worker_precision();
  test_device();
  test_truncate_ids();
  test_open_model();
  return check_report("test_cli");
}
