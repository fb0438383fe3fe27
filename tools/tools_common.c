/* tools_common.c - see tools_common.h. */
#include "tools_common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "tools_api.h"

double tool_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int tool_parse_floats(const char *s, double *out, int cap, int *n) {
    *n = 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        char item[128];
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (len >= sizeof item || *n == cap) return -1;
        memcpy(item, s, len);
        item[len] = 0;
        if (opt_parse_double(item, &out[*n])) return -1;
        (*n)++;
        if (!comma) return 0;
        s = comma + 1;
    }
}

tool_load_opts tool_load_defaults(void) {
    tool_load_opts o;
    o.params = pi0_params_default();
    o.progress = isatty(2);
    return o;
}

/* Load progress on stderr: what the library is doing (bytes packed of the total), percent and seconds
 * since the load began. On a terminal one line redrawn at most once a second or per 5 %; otherwise
 * (--progress into a log) one line per 10 %. Loads run one at a time, so the state is static. */
static struct { double t0, last_t; int last_step, tty; } prog;

static void show_progress(float f, const char *what, void *user) {
    (void)user;
    double t = tool_now();
    if (prog.t0 == 0) { prog.t0 = prog.last_t = t; prog.last_step = -1; prog.tty = isatty(2); }
    int step = (int)(f * (prog.tty ? 20 : 10));
    int done = f >= 1.0f;
    if (!done && step == prog.last_step && !(prog.tty && t - prog.last_t >= 1.0)) return;
    prog.last_step = step;
    prog.last_t = t;
    if (prog.tty) fprintf(stderr, "\r\033[Kloading: %s  %3.0f%%  %.1f s", what, 100.0f * f, t - prog.t0);
    else fprintf(stderr, "loading: %s  %3.0f%%  %.1f s\n", what, 100.0f * f, t - prog.t0);
    if (done) {
        if (prog.tty) fputc('\n', stderr);
        prog.t0 = 0;
    }
}

pi0_status tool_load(const char *dir, const tool_load_opts *o, pi0_ctx **ctx) {
    pi0_params p = o->params;
    if (o->progress) p.progress = show_progress;
    pi0_status s = pi0_load(dir, &p, ctx);
    if (s != PI0_OK && prog.t0 != 0) {   /* a failed load leaves the line open */
        if (prog.tty) fputc('\n', stderr);
        prog.t0 = 0;
    }
    return s;
}

/* Read a tensor and check its element count. */
static pi0_status need(const pi0_st_file *f, const char *name, int64_t want, int is_int, void **out) {
    int64_t n = 0;
    pi0_status s = is_int ? pi0_st_read_i32(f, name, (int32_t **)out, &n) : pi0_st_read_f32(f, name, (float **)out, &n);
    if (s) return s;
    if (want >= 0 && n != want)
        return pi0_err(PI0_ERR_ARG, "%s: tensor '%s': %lld elements, expected %lld", f->path, name, (long long)n,
                       (long long)want);
    return PI0_OK;
}

pi0_status tool_case_read(const char *path, const pi0_config *c, case_file *cf) {
    memset(cf, 0, sizeof *cf);
    pi0_st_file *f;
    pi0_status s = pi0_st_open(path, &f);
    if (s) return s;
    const pi0_st_tensor *ti = pi0_st_find(f, "images"), *tt = pi0_st_find(f, "tokens"), *ts = pi0_st_find(f, "state");
    int64_t S = c->image_size, C = c->n_channels;
    if (!ti || ti->ndim != 5 || ti->shape[0] != 1 || ti->shape[2] != C || ti->shape[3] != S || ti->shape[4] != S) {
        s = pi0_err(PI0_ERR_ARG, "%s: tensor 'images' must be [1, N, %lld, %lld, %lld] (CHW per slot)", path,
                    (long long)C, (long long)S, (long long)S);
        goto done;
    }
    if (!tt || tt->ndim != 2 || tt->shape[0] != 1) { s = pi0_err(PI0_ERR_ARG, "%s: tensor 'tokens' must be [1, L]", path); goto done; }
    int64_t N = ti->shape[1], L = tt->shape[1];
    if ((s = need(f, "images", -1, 0, (void **)&cf->images)) ||
        (s = need(f, "image_masks", N, 1, (void **)&cf->image_masks)) ||
        (s = need(f, "tokens", L, 1, (void **)&cf->tokens)) || (s = need(f, "token_masks", L, 1, (void **)&cf->token_masks)))
        goto done;
    if (ts && (s = need(f, "state", -1, 0, (void **)&cf->state))) goto done;
    if (pi0_st_find(f, "noise") &&
        (s = need(f, "noise", (int64_t)c->action_horizon * c->action_dim, 0, (void **)&cf->noise)))
        goto done;
    if (pi0_st_find(f, "num_steps")) {
        int32_t *ns;
        if ((s = need(f, "num_steps", 1, 1, (void **)&ns))) goto done;
        cf->n_steps = ns[0];
        free(ns);
    }
    cf->obs = (pi0_obs){(int)N, cf->images, cf->image_masks, (int)L, cf->tokens, cf->token_masks,
                        ts ? (int)ts->numel : 0, cf->state};
done:
    pi0_st_close(f);
    if (s) tool_case_free(cf);
    return s;
}

void tool_case_free(case_file *cf) {
    free(cf->images); free(cf->state); free(cf->noise); free(cf->image_masks); free(cf->tokens); free(cf->token_masks);
    memset(cf, 0, sizeof *cf);
}

static int has_ext(const char *p, const char *e) {
    size_t n = strlen(p), m = strlen(e);
    return n >= m && !strcmp(p + n - m, e);
}

int tool_write_actions(const char *path, const float *a, int rows, int cols, int batch_dim) {
    if (has_ext(path, ".safetensors")) {
        pi0_st_writer *w = pi0_st_writer_new();
        int64_t s3[3] = {1, rows, cols}, s2[2] = {rows, cols};
        pi0_status s = pi0_st_writer_add(w, "actions", PI0_DT_F32, batch_dim ? 3 : 2, batch_dim ? s3 : s2, a);
        if (s == PI0_OK) s = pi0_st_writer_save(w, path);
        pi0_st_writer_free(w);
        return s ? cli_error("%s", pi0_last_error()) : 0;
    }
    FILE *f = NULL;
    if (has_ext(path, ".json")) {
        if (!(f = fopen(path, "w"))) return cli_error("%s: cannot create: %s", path, strerror(errno));
        fprintf(f, "{\"actions\": [");
        for (int i = 0; i < rows; i++) {
            fprintf(f, "%s[", i ? ", " : "");
            for (int j = 0; j < cols; j++) fprintf(f, "%s%.9g", j ? ", " : "", (double)a[(size_t)i * cols + j]);
            fprintf(f, "]");
        }
        fprintf(f, "]}\n");
    } else if (has_ext(path, ".npy")) {
        if (!(f = fopen(path, "wb"))) return cli_error("%s: cannot create: %s", path, strerror(errno));
        char hdr[128];
        int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
        int total = 10 + n + 1, pad = (64 - total % 64) % 64; /* header padded to 64 bytes, ends in \n */
        unsigned short hl = (unsigned short)(n + pad + 1);
        fwrite("\x93NUMPY\x01\x00", 1, 8, f);
        fputc(hl & 0xff, f);
        fputc(hl >> 8, f);
        fwrite(hdr, 1, (size_t)n, f);
        for (int i = 0; i < pad; i++) fputc(' ', f);
        fputc('\n', f);
        fwrite(a, sizeof(float), (size_t)rows * cols, f); /* little-endian hosts only (x86-64, aarch64) */
    } else {
        return cli_error("%s: unknown output extension (use .safetensors, .json or .npy)", path);
    }
    if (fclose(f) != 0) return cli_error("%s: write failed", path);
    return 0;
}
