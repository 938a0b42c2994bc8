/* cmd_encode: placeholder until the module lands (tracked in the issue); fails clearly. */
#include "commands.h"
#include "err.h"

int cmd_encode(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return err_set(ERR_ARG, "'encode' is not built yet");
}
