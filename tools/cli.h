/* cli.h - the pi0 command's subcommands; each is `int cmd_x(int argc, char **argv)` with argv[0]
 * the subcommand name, returning the process exit code (0 ok, 1 error, 2 usage). */
#ifndef PI0_CLI_H
#define PI0_CLI_H

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_gen_random(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_check(int argc, char **argv);

/* Print "error: <msg>" to stderr; returns 1. */
int cli_error(const char *fmt, ...);

#endif
