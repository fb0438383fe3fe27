/* opts.h - command-line options as data: each command describes its options in tables of opt_spec
 * (name, type, range, default, help, required), and one parser reads argv against them; `--help` is
 * generated from the same tables, each default read from the destination's value before parsing
 * (so the library's pi0_params_default() is what --help shows).
 *
 * A new command: write `int cmd_x(int argc, char **argv)` in tools/cmd_x.c, describe its options in
 * an opt_spec table (reuse opt_load_block / OPT_STEPS for model loading and runs), call opt_parse,
 * and add one row to the command table in tools/pi0.c and its prototype in tools/cli.h.
 *
 * Errors always name the option: an unknown option (with a pointer to --help), a missing value, a
 * value out of range or not a number, a required option not given. opt_parse prints them on stderr. */
#ifndef PI0_OPTS_H
#define PI0_OPTS_H

#include <stddef.h>
#include <stdio.h>

#include "pi0.h"

typedef enum {
    OPT_END = 0, /* terminates a table */
    OPT_FLAG,    /* no value: *(int *)dest = ival (0: 1; -1: 0) */
    OPT_STR,     /* *(const char **)dest = the argument */
    OPT_INT,     /* *(int *)dest, checked against lo..hi */
    OPT_U64,     /* *(unsigned long long *)dest, decimal, checked against lo..hi (hi 0 = no maximum) */
    OPT_DOUBLE,  /* *(double *)dest, strict float parse, checked against lo..hi (lo_open: > lo) */
    OPT_FLOAT,   /* the same into a float */
    OPT_BOOL,    /* *(int *)dest = 1 for true/1, 0 for false/0 */
    OPT_CHOICE,  /* *(int *)dest = the index of the argument in choices ("fast|ref"), or vals[index] */
    OPT_CUSTOM,  /* parse(arg, dest): NULL ok, else the reason (printed after the option's name) */
} opt_type;

typedef struct opt_spec {
    const char *name;   /* "--steps" */
    opt_type type;
    void *dest;
    const char *meta;   /* value placeholder in --help ("N", "DIR"); choices are shown for OPT_CHOICE */
    const char *help;   /* may hold '\n' for more lines */
    double lo, hi;      /* OPT_INT/U64/DOUBLE/FLOAT range, inclusive */
    int lo_open;        /* OPT_DOUBLE/FLOAT: value must be > lo */
    const char *choices;/* OPT_CHOICE: "a|b|c" */
    const int *vals;    /* OPT_CHOICE: value stored for each choice (NULL = its index) */
    int ival;           /* OPT_FLAG: value stored (0 = 1) */
    const char *def;    /* default text for --help; NULL = the destination's value before parsing
                           ("none" for an unset string) */
    int required;
    int repeat;         /* OPT_CUSTOM given more than once adds (help shows NAME=PATH...) */
    int *seen;          /* set to 1 when given (may be NULL) */
    const char *(*parse)(const char *arg, void *dest); /* OPT_CUSTOM */
} opt_spec;

/* A titled table of options: a command passes several (its own, then shared blocks). */
typedef struct {
    const char *title;  /* NULL = no heading */
    const opt_spec *opts;
} opt_group;

typedef struct {
    const char *name;        /* "run" */
    const char *usage;       /* usage lines after "usage: " (several separated by '\n') */
    const char *about;       /* paragraph after the usage */
    const char *epilogue;    /* printed after the options (may be NULL) */
    const char *positional;  /* "TEXT..." when free arguments are taken, else NULL */
} opt_cmd;

/* Parse argv[1..] (argv[0] is the command name). Returns OPT_OK, OPT_HELP (the help was printed on
 * stdout: exit 0) or OPT_USAGE (an error was printed on stderr: exit 2). With cmd->positional,
 * *first_pos gets the index of the first free argument (argc if none); otherwise one is an error. */
enum { OPT_OK = 0, OPT_HELP = 1, OPT_USAGE = 2 };
int opt_parse(const opt_cmd *cmd, const opt_group *groups, int n_groups, int argc, char **argv, int *first_pos);
/* The help text of a command (what --help prints), on f. */
void opt_help(const opt_cmd *cmd, const opt_group *groups, int n_groups, FILE *f);
/* A usage error naming the command's --help; returns OPT_USAGE (2). */
int opt_usage_error(const opt_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The integer (signed, unsigned) and float parsers (strict: the whole string, no overflow, finite). 0 ok. */
int opt_parse_ll(const char *s, long long *out);
int opt_parse_ull(const char *s, unsigned long long *out);
int opt_parse_double(const char *s, double *out);

/* Shared ranges: every command that takes these uses the same limits (and the library checks the
 * same constants in pi0_load / pi0_infer). */
#define OPT_STEPS_MAX PI0_MAX_STEPS
#define OPT_THREADS_MAX PI0_MAX_THREADS

/* Options of every command that loads a model: --backend, --weights, --int8-vision, --threads,
 * --strict, --progress, --no-progress into *lo. `fixed` leaves out --backend and --strict (commands
 * that choose them: check). The returned table lives in *blk. After opt_parse, opt_load_check
 * reports the combinations a single option cannot (--int8-vision without --weights int8) as a usage
 * error (OPT_USAGE), else OPT_OK. */
typedef struct {
    pi0_params params;
    int progress; /* print load progress on stderr (on by default when stderr is a terminal) */
} tool_load_opts;
typedef struct { opt_spec s[10]; } opt_load_block;
const opt_spec *opt_load_options(opt_load_block *blk, tool_load_opts *lo, int fixed);
int opt_load_check(const opt_cmd *cmd, const tool_load_opts *lo);

/* "bf16", "f32" or "int8" for a pi0_weight_kind (what --weights takes). */
const char *opt_weights_name(int kind);

/* --steps N into *steps (0 = not given: the inputs' or the config's) and --seed N. */
#define OPT_STEPS(ptr)                                                                                                 \
    {.name = "--steps", .type = OPT_INT, .dest = (ptr), .meta = "N", .help = "denoising steps", .lo = 1,               \
     .hi = OPT_STEPS_MAX, .def = "the inputs' num_steps, else the config's (10)"}
#define OPT_SEED(ptr, helptext) {.name = "--seed", .type = OPT_U64, .dest = (ptr), .meta = "N", .help = (helptext)}

#endif
