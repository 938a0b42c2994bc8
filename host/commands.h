/* commands: one entry point per CLI subcommand, each in host/cmd_<name>.c.
 * Each parses its own arguments (argv[0] is the subcommand name), prints its data on stdout,
 * progress on stderr, and returns 0 on success or a negative ERR_ code with err_msg() set.
 * main.c prints the message and exits; no command calls exit(). */
#ifndef SPLADEX_COMMANDS_H
#define SPLADEX_COMMANDS_H

int cmd_expand(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_queries(int argc, char **argv);
int cmd_selftest(int argc, char **argv);

#endif
