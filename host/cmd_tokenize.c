/* cmd_tokenize: `spladex tokenize --model DIR [--max-length N]` -- one text per stdin line,
 * its WordPiece ids ([CLS] ... [SEP]) space-separated on one stdout line. Lines may be of any
 * length; a trailing "\n" or "\r\n" is not part of the text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "err.h"
#include "tokenizer.h"

static void tokenize_usage(FILE *to) {
  fprintf(to,
          "usage: spladex tokenize --model DIR [--max-length N] [--words]\n"
          "\n"
          "Reads one text per line on stdin and prints its WordPiece ids, [CLS] ... [SEP],\n"
          "space-separated, one line per input line (HF BertTokenizerFast semantics).\n"
          "\n"
          "  --model DIR       model directory with vocab.txt or tokenizer.json (or the file)\n"
          "  --max-length N    at most N ids per text, [SEP] kept last (default 256; 0 = no limit)\n"
          "  --words           print the normalized, pre-tokenized words instead of ids\n"
          "                    (for checking against HF; no truncation)\n"
          "  --help            this text\n"
          "\n"
          "Invalid UTF-8 bytes are deleted without splitting the word around them (as HF does\n"
          "with the text decoded with errors=\"replace\", whose U+FFFD its normalizer drops).\n");
}

static int tokenize_write(FILE *out, const int32_t *ids, size_t n) {
  char line[16 * 64];
  size_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    char digits[12];
    int nd = 0;
    uint32_t v = (uint32_t)ids[i];
    do {
      digits[nd++] = (char)('0' + v % 10);
      v /= 10;
    } while (v);
    if (pos + 13 > sizeof line) {
      if (fwrite(line, 1, pos, out) != pos) return -1;
      pos = 0;
    }
    if (i) line[pos++] = ' ';
    while (nd) line[pos++] = digits[--nd];
  }
  line[pos++] = '\n';
  return fwrite(line, 1, pos, out) == pos ? 0 : -1;
}

int cmd_tokenize(int argc, char **argv) {
  const char *model = NULL;
  int max_length = 256, words = 0, rc = 0;
  tok *t = NULL;
  tok_buffer buf = {0};
  char *line = NULL;
  size_t line_cap = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      tokenize_usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
      model = argv[++i];
    } else if (!strcmp(argv[i], "--max-length") && i + 1 < argc) {
      if ((rc = cli_parse_int("--max-length", argv[++i], 0, 1000000000, &max_length)) < 0)
        return rc;
      if (max_length == 1)
        return err_set(ERR_ARG, "--max-length '1': expected 0 (no limit) or an integer >= 2");
    } else if (!strcmp(argv[i], "--words")) {
      words = 1;
    } else {
      tokenize_usage(stderr);
      return err_set(ERR_ARG, "unknown or incomplete option '%s'", argv[i]);
    }
  }
  if (!model) {
    tokenize_usage(stderr);
    return err_set(ERR_ARG, "--model DIR is required");
  }
  if ((rc = cli_open_tokenizer(model, &t)) < 0) return rc;
  static char out_buffer[1 << 16];
  setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);
  long line_no = 0;
  for (;;) {
    errno = 0;
    ssize_t got = getline(&line, &line_cap, stdin);
    if (got < 0) {
      if (ferror(stdin)) {
        rc = err_set(ERR_IO, "stdin: read failed after line %ld: %s", line_no, strerror(errno));
        goto fail;
      }
      break;
    }
    line_no++;
    size_t n = (size_t)got;
    if (n && line[n - 1] == '\n') n--;
    if (n && line[n - 1] == '\r') n--;
    if (words) {
      const char *text;
      size_t text_len;
      if ((rc = tok_words(t, line, n, &buf, &text, &text_len)) < 0) goto fail;
      fwrite(text, 1, text_len, stdout);
      fputc('\n', stdout);
    } else {
      if ((rc = tok_encode(t, line, n, max_length, &buf)) < 0) goto fail;
      tokenize_write(stdout, buf.ids, buf.n);
    }
    if (ferror(stdout)) {
      rc = err_set(ERR_IO, "stdout: write failed at line %ld", line_no);
      goto fail;
    }
  }
  if (fflush(stdout) != 0) {
    rc = err_set(ERR_IO, "stdout: write failed: %s", strerror(errno));
    goto fail;
  }
fail:
  fflush(stdout);
  free(line);
  tok_buffer_free(&buf);
  tok_free(t);
  return rc;
}
