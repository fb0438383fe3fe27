/* pi0.c - the pi0 command: a thin CLI over pi0.h. Subcommands live in tools/cmd_*.c. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"info", cmd_info, "show a checkpoint's configuration, parameters per part, dtypes and bytes"},
    {"run", cmd_run, "sample an action chunk from model-level inputs or from camera images, prompt and state"},
    {"gen-random", cmd_gen_random, "write a random checkpoint (tiny or full size) for demos and benchmarks"},
    {"tokenize", cmd_tokenize, "print the token ids of a prompt"},
    {"check", cmd_check, "compare the fast path with the reference path, component by component (PCC)"},
    {"audit", cmd_audit, "run one inference and show which path each op ran on and where time went"},
    {"bench", cmd_bench, "time load, vision, prefix and each denoising step against the machine's peak"},
    {"serve", cmd_serve, "serve the policy over openpi's websocket protocol"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: pi0 <command> [options]   (pi0 <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
