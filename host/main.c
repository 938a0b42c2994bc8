/* spladex: the command-line entry point. Dispatches to host/cmd_*.c, prints the one error
 * message a failing command recorded, and is the only place that calls exit(). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "err.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"expand", cmd_expand, "expand a corpus into HDF5 shards of SPLADE vectors"},
    {"encode", cmd_encode, "print the SPLADE vector of each passage (arguments or stdin lines)"},
    {"tokenize", cmd_tokenize, "print the WordPiece ids of each stdin line"},
    {"info", cmd_info, "statistics of a shard or shard directory"},
    {"verify", cmd_verify, "check a shard directory for missing, partial or inconsistent shards"},
    {"export", cmd_export, "export a shard directory to Anserini JSONL, CIFF or CSR"},
    {"queries", cmd_queries, "encode topics into the query file of PISA, Anserini or Seismic"},
    {"selftest", cmd_selftest, "check a device against the CPU on built-in passages, and time it"},
};

static void usage(FILE *to) {
  fprintf(to, "usage: spladex COMMAND [OPTIONS]   (spladex COMMAND --help for its options)\n\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(to, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("spladex %s\n", SPLADEX_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(argv[1], commands[i].name)) continue;
    int rc = commands[i].run(argc - 1, argv + 1);
    if (rc < 0) {
      fprintf(stderr, "spladex %s: %s\n", commands[i].name, err_msg()[0] ? err_msg() : "failed");
      return rc == ERR_ARG ? 2 : 1;
    }
    return rc;
  }
  fprintf(stderr, "spladex: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
