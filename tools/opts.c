/* opts.c - see opts.h: one parser and one help printer over option tables. */
#include "opts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int opt_parse_ll(const char *s, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || end == s) return -1;
    *out = v;
    return 0;
}

int opt_parse_ull(const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *s == '+' || *end || errno || end == s) return -1;
    *out = v;
    return 0;
}

int opt_parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || end == s || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int opt_usage_error(const opt_cmd *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nrun 'pi0 %s --help' for usage\n", cmd->name);
    return OPT_USAGE;
}

/* "1..1000", "> 0", ">= 0": the range in messages and --help. */
static void range_text(const opt_spec *o, char *buf, size_t n) {
    if (o->type == OPT_INT) snprintf(buf, n, "%.0f..%.0f", o->lo, o->hi);
    else if (o->type == OPT_U64) o->hi > 0 ? snprintf(buf, n, "%.0f..%.0f", o->lo, o->hi) : snprintf(buf, n, ">= %.0f", o->lo);
    else if (o->hi > o->lo) snprintf(buf, n, "%s%g..%g", o->lo_open ? "> " : "", o->lo, o->hi);
    else snprintf(buf, n, "%s %g", o->lo_open ? ">" : ">=", o->lo);
}

static int choice_index(const char *choices, const char *arg) {
    size_t len = strlen(arg);
    int k = 0;
    for (const char *p = choices;; k++) {
        const char *bar = strchr(p, '|');
        size_t m = bar ? (size_t)(bar - p) : strlen(p);
        if (m == len && !strncmp(p, arg, len)) return k;
        if (!bar) return -1;
        p = bar + 1;
    }
}

/* The n-th choice name into buf. */
static void choice_name(const char *choices, int idx, char *buf, size_t n) {
    const char *p = choices;
    for (int k = 0; k < idx && p; k++) p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL;
    if (!p) { snprintf(buf, n, "?"); return; }
    const char *bar = strchr(p, '|');
    snprintf(buf, n, "%.*s", (int)(bar ? (size_t)(bar - p) : strlen(p)), p);
}

static int store(const opt_cmd *cmd, const opt_spec *o, const char *arg) {
    char rng[64];
    range_text(o, rng, sizeof rng);
    switch (o->type) {
    case OPT_STR: *(const char **)o->dest = arg; return 0;
    case OPT_INT: {
        long long v;
        if (opt_parse_ll(arg, &v)) return opt_usage_error(cmd, "%s: '%s' is not an integer (%s)", o->name, arg, rng);
        if ((double)v < o->lo || (double)v > o->hi) return opt_usage_error(cmd, "%s: %s is out of range %s", o->name, arg, rng);
        *(int *)o->dest = (int)v;
        return 0;
    }
    case OPT_U64: {
        unsigned long long v;
        if (opt_parse_ull(arg, &v))
            return opt_usage_error(cmd, "%s: '%s' is not an unsigned integer (%s)", o->name, arg, rng);
        if ((double)v < o->lo || (o->hi > 0 && (double)v > o->hi))
            return opt_usage_error(cmd, "%s: %s is out of range %s", o->name, arg, rng);
        *(unsigned long long *)o->dest = v;
        return 0;
    }
    case OPT_DOUBLE: case OPT_FLOAT: {
        double v;
        if (opt_parse_double(arg, &v)) return opt_usage_error(cmd, "%s: '%s' is not a number (%s)", o->name, arg, rng);
        int bad = o->lo_open ? !(v > o->lo) : !(v >= o->lo);
        if (o->hi > o->lo && v > o->hi) bad = 1;
        if (bad) return opt_usage_error(cmd, "%s: %s is out of range %s", o->name, arg, rng);
        if (o->type == OPT_DOUBLE) *(double *)o->dest = v;
        else *(float *)o->dest = (float)v;
        return 0;
    }
    case OPT_BOOL:
        if (!strcmp(arg, "true") || !strcmp(arg, "1")) *(int *)o->dest = 1;
        else if (!strcmp(arg, "false") || !strcmp(arg, "0")) *(int *)o->dest = 0;
        else return opt_usage_error(cmd, "%s: '%s' is not true or false", o->name, arg);
        return 0;
    case OPT_CHOICE: {
        int k = choice_index(o->choices, arg);
        if (k < 0) { /* "a|b|c" as "a, b or c" */
            char list[256];
            size_t n = 0;
            for (const char *p = o->choices; *p && n + 4 < sizeof list; p++) {
                if (*p != '|') { list[n++] = *p; continue; }
                const char *more = strchr(p + 1, '|');
                n += (size_t)snprintf(list + n, sizeof list - n, more ? ", " : " or ");
            }
            list[n < sizeof list ? n : sizeof list - 1] = 0;
            return opt_usage_error(cmd, "%s: '%s' unknown, expected %s", o->name, arg, list);
        }
        *(int *)o->dest = o->vals ? o->vals[k] : k;
        return 0;
    }
    case OPT_CUSTOM: {
        const char *why = o->parse(arg, o->dest);
        return why ? opt_usage_error(cmd, "%s: '%s': %s", o->name, arg, why) : 0;
    }
    default: return opt_usage_error(cmd, "%s: internal option type %d", o->name, (int)o->type);
    }
}

/* The default shown in --help, from the destination's value before parsing. */
static void default_text(const opt_spec *o, char *buf, size_t n) {
    if (o->def) { snprintf(buf, n, "%s", o->def); return; }
    switch (o->type) {
    case OPT_STR: snprintf(buf, n, "%s", *(const char **)o->dest ? *(const char **)o->dest : "none"); break;
    case OPT_INT: snprintf(buf, n, "%d", *(int *)o->dest); break;
    case OPT_U64: snprintf(buf, n, "%llu", *(unsigned long long *)o->dest); break;
    case OPT_DOUBLE: snprintf(buf, n, "%g", *(double *)o->dest); break;
    case OPT_FLOAT: snprintf(buf, n, "%g", (double)*(float *)o->dest); break;
    case OPT_BOOL: snprintf(buf, n, "%s", *(int *)o->dest ? "true" : "false"); break;
    case OPT_CHOICE: {
        int v = *(int *)o->dest, k = v;
        if (o->vals) {
            k = -1;
            for (int i = 0; k < 0 && i < 64; i++) {
                char tmp[64];
                choice_name(o->choices, i, tmp, sizeof tmp);
                if (!strcmp(tmp, "?")) break;
                if (o->vals[i] == v) k = i;
            }
        }
        choice_name(o->choices, k, buf, n);
        break;
    }
    default: snprintf(buf, n, "none"); break;
    }
}

void opt_help(const opt_cmd *cmd, const opt_group *groups, int n_groups, FILE *f) {
    const char *u = cmd->usage;
    int first = 1;
    while (*u) { /* each usage line: "usage: pi0 <line>", continuation lines aligned */
        const char *nl = strchr(u, '\n');
        int len = nl ? (int)(nl - u) : (int)strlen(u);
        fprintf(f, "%s%.*s\n", first ? "usage: " : "       ", len, u);
        first = 0;
        u += len + (nl != NULL);
    }
    if (cmd->about) fprintf(f, "\n%s\n", cmd->about);
    for (int g = 0; g < n_groups; g++) {
        fprintf(f, "\n%s%s", groups[g].title ? groups[g].title : "", groups[g].title ? ":\n" : "");
        for (const opt_spec *o = groups[g].opts; o->type != OPT_END; o++) {
            char left[96], dflt[160];
            if (o->type == OPT_FLAG) snprintf(left, sizeof left, "%s", o->name);
            else if (o->type == OPT_CHOICE) snprintf(left, sizeof left, "%s %s", o->name, o->choices);
            else if (o->type == OPT_BOOL) snprintf(left, sizeof left, "%s true|false", o->name);
            else snprintf(left, sizeof left, "%s %s%s", o->name, o->meta ? o->meta : "X", o->repeat ? "..." : "");
            default_text(o, dflt, sizeof dflt);
            /* help text, one line per '\n', the default (or [required]) after the last line */
            const char *h = o->help ? o->help : "";
            int line = 0;
            for (;;) {
                const char *nl = strchr(h, '\n');
                int len = nl ? (int)(nl - h) : (int)strlen(h);
                if (line == 0 && strlen(left) > 21) fprintf(f, "  %s\n  %-21s %.*s", left, "", len, h);
                else fprintf(f, "  %-21s %.*s", line == 0 ? left : "", len, h);
                if (!nl) break;
                fputc('\n', f);
                h = nl + 1;
                line++;
            }
            if (o->required) fprintf(f, "  [required]");
            else if (o->type != OPT_FLAG) {
                char rng[64] = "";
                if (o->type == OPT_INT || o->type == OPT_U64 || o->type == OPT_DOUBLE || o->type == OPT_FLOAT)
                    range_text(o, rng, sizeof rng);
                if (rng[0] && !(o->type == OPT_U64 && o->hi <= 0 && o->lo == 0)) fprintf(f, " (%s)", rng);
                fprintf(f, "  [default: %s]", dflt);
            }
            fputc('\n', f);
        }
    }
    fprintf(f, "  %-21s %s\n", "-h, --help", "this text");
    if (cmd->epilogue) fprintf(f, "\n%s\n", cmd->epilogue);
}

static const opt_spec *lookup(const opt_group *groups, int n_groups, const char *name) {
    for (int g = 0; g < n_groups; g++)
        for (const opt_spec *o = groups[g].opts; o->type != OPT_END; o++)
            if (!strcmp(o->name, name)) return o;
    return NULL;
}

int opt_parse(const opt_cmd *cmd, const opt_group *groups, int n_groups, int argc, char **argv, int *first_pos) {
    if (first_pos) *first_pos = argc;
    /* which options were given, for the required check */
    int n_opts = 0;
    for (int g = 0; g < n_groups; g++)
        for (const opt_spec *o = groups[g].opts; o->type != OPT_END; o++) n_opts++;
    char *given = calloc((size_t)n_opts + 1, 1);
    if (!given) return opt_usage_error(cmd, "out of memory");
    int rc = OPT_OK;
    for (int i = 1; i < argc && rc == OPT_OK; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { opt_help(cmd, groups, n_groups, stdout); rc = OPT_HELP; break; }
        if (cmd->positional && (!strcmp(a, "--") || a[0] != '-' || !a[1])) {
            if (first_pos) *first_pos = i + !strcmp(a, "--");
            break;
        }
        const opt_spec *o = lookup(groups, n_groups, a);
        if (!o) {
            rc = a[0] == '-' ? opt_usage_error(cmd, "unknown option '%s'", a)
                             : opt_usage_error(cmd, "unexpected argument '%s'", a);
            break;
        }
        int idx = 0;
        for (int g = 0, k = 0; g < n_groups; g++)
            for (const opt_spec *p = groups[g].opts; p->type != OPT_END; p++, k++)
                if (p == o) idx = k;
        given[idx] = 1; /* given twice: the last value wins (OPT_CUSTOM with repeat collects each) */
        if (o->seen) *o->seen = 1;
        if (o->type == OPT_FLAG) { *(int *)o->dest = o->ival < 0 ? 0 : o->ival ? o->ival : 1; continue; }
        if (i + 1 >= argc) { rc = opt_usage_error(cmd, "%s needs a value", o->name); break; }
        rc = store(cmd, o, argv[++i]);
    }
    if (rc == OPT_OK) {
        int k = 0;
        for (int g = 0; g < n_groups && rc == OPT_OK; g++)
            for (const opt_spec *o = groups[g].opts; o->type != OPT_END && rc == OPT_OK; o++, k++)
                if (o->required && !given[k]) rc = opt_usage_error(cmd, "%s is required", o->name);
    }
    free(given);
    return rc;
}

static const int backend_vals[] = {PI0_BACKEND_FAST, PI0_BACKEND_REF};
static const int weight_vals[] = {PI0_WEIGHTS_BF16, PI0_WEIGHTS_F32, PI0_WEIGHTS_INT8};

const char *opt_weights_name(int kind) {
    return kind == PI0_WEIGHTS_BF16 ? "bf16" : kind == PI0_WEIGHTS_F32 ? "f32" : kind == PI0_WEIGHTS_INT8 ? "int8" : "?";
}

const opt_spec *opt_load_options(opt_load_block *blk, tool_load_opts *lo, int fixed) {
    opt_spec *s = blk->s;
    int n = 0;
    memset(blk, 0, sizeof *blk);
    if (!fixed)
        s[n++] = (opt_spec){.name = "--backend", .type = OPT_CHOICE, .dest = &lo->params.backend, .choices = "fast|ref",
                            .vals = backend_vals, .help = "kernels: fast (SIMD, packed weights) or ref (float32 oracle)"};
    s[n++] = (opt_spec){.name = "--weights", .type = OPT_CHOICE, .dest = &lo->params.weights, .choices = "bf16|f32|int8",
                        .vals = weight_vals,
                        .help = "what the fast path packs weights into at load; int8: the VLM's and action expert's\n"
                                "q/k/v/o, gate/up, down quantized (per output channel, activations per token); vision\n"
                                "tower, projector, action/state projections, time MLPs and adaptive norms kept bf16"};
    s[n++] = (opt_spec){.name = "--int8-vision", .type = OPT_FLAG, .dest = &lo->params.int8_vision,
                        .help = "with --weights int8: the SigLIP vision tower's q/k/v/o, fc1, fc2 int8 too (faster\n"
                                "vision; less safe: published int8 work found the vision tower sensitive; confirm on\n"
                                "your weights with pi0 check --weights int8 --int8-vision)"};
    s[n++] = (opt_spec){.name = "--threads", .type = OPT_INT, .dest = &lo->params.n_threads, .meta = "N",
                        .help = "worker threads, 0 = the CPUs this process may use (taskset)", .lo = 0, .hi = OPT_THREADS_MAX};
    if (!fixed)
        s[n++] = (opt_spec){.name = "--strict", .type = OPT_FLAG, .dest = &lo->params.strict,
                            .help = "any fallback from fast to ref is an error"};
    s[n++] = (opt_spec){.name = "--progress", .type = OPT_FLAG, .dest = &lo->progress,
                        .help = "load progress on stderr (default when stderr is a terminal)"};
    s[n++] = (opt_spec){.name = "--no-progress", .type = OPT_FLAG, .dest = &lo->progress, .ival = -1,
                        .help = "no load progress"};
    return s;
}

int opt_load_check(const opt_cmd *cmd, const tool_load_opts *lo) {
    if (lo->params.int8_vision && lo->params.weights != PI0_WEIGHTS_INT8)
        return opt_usage_error(cmd, "--int8-vision needs --weights int8 (it quantizes the vision tower beside the "
                                    "Gemma layers), got --weights %s", opt_weights_name(lo->params.weights));
    return OPT_OK;
}
