/* cmd_expand: placeholder until the module lands (tracked in the issue); fails clearly. */
#include "commands.h"
#include "err.h"

int cmd_expand(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return err_set(ERR_ARG, "'expand' is not built yet");
}
