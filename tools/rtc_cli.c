/* rtc_cli.c - `pi0 run`'s real-time chunking options and --taps (see rtc_cli.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tools_api.h"
#include "rtc_cli.h"
#include "tools_common.h"

void rtc_cli_init(rtc_cli *o) {
    memset(o, 0, sizeof *o);
    o->delay = o->horizon = -1;
    o->params = pi0_rtc_params_default();
}

void rtc_cli_free(rtc_cli *o) {
    free(o->prev);
    o->prev = NULL;
}

static const int mode_vals[] = {PI0_RTC_GUIDED, PI0_RTC_GUIDED_FD, PI0_RTC_TRAINED, PI0_RTC_GUIDED};

static int params_block(opt_spec *s, pi0_rtc_params *p) {
    int n = 0;
    s[n++] = (opt_spec){.name = "--rtc-mode", .type = OPT_CHOICE, .dest = &p->mode, .choices = "identity|fd|training|guided",
                        .vals = mode_vals,
                        .help = "identity (guided, identity Jacobian; 'guided' is the same) | fd (finite-difference\n"
                                "J·e, one more expert pass per step) | training (training-time RTC: π0.5 checkpoints\n"
                                "trained for it, config.json rtc_training_max_delay >= D)"};
    s[n++] = (opt_spec){.name = "--rtc-schedule", .type = OPT_CHOICE, .dest = &p->schedule, .choices = "linear|exp|ones|zeros",
                        .help = "prefix-weight schedule"};
    s[n++] = (opt_spec){.name = "--rtc-beta", .type = OPT_FLOAT, .dest = &p->max_guidance, .meta = "B", .lo = 0, .lo_open = 1,
                        .help = "guidance limit beta"};
    s[n++] = (opt_spec){.name = "--rtc-fd-step", .type = OPT_FLOAT, .dest = &p->fd_step, .meta = "E", .lo = 0,
                        .def = "0 = 0.01", .help = "fd probe size (largest |x| change)"};
    return n;
}

const opt_spec *rtc_params_options(rtc_opt_block *blk, pi0_rtc_params *p) {
    memset(blk, 0, sizeof *blk);
    params_block(blk->s, p);
    return blk->s;
}

const opt_spec *rtc_cli_options(rtc_opt_block *blk, rtc_cli *o) {
    memset(blk, 0, sizeof *blk);
    opt_spec *s = blk->s;
    int n = 0;
    s[n++] = (opt_spec){.name = "--prev-actions", .type = OPT_STR, .dest = &o->prev_path, .meta = "FILE",
                        .help = "the previous chunk as `pi0 run --out` wrote it (.npy or .safetensors 'actions'),\n"
                                "model units with --inputs, robot units with --image; rows S.. are used"};
    s[n++] = (opt_spec){.name = "--delay", .type = OPT_INT, .dest = &o->delay, .meta = "D", .lo = 0, .hi = 100000,
                        .def = "none", .help = "inference delay d in control steps (old rows the robot still executes)"};
    s[n++] = (opt_spec){.name = "--horizon", .type = OPT_INT, .dest = &o->horizon, .meta = "S", .lo = 0, .hi = 100000,
                        .def = "none",
                        .help = "execution horizon s: rows of the previous chunk executed when this\n"
                                "observation was taken (d <= s <= H - d)"};
    n += params_block(s + n, &o->params);
    s[n++] = (opt_spec){.name = "--taps", .type = OPT_STR, .dest = &o->taps_path, .meta = "FILE",
                        .help = "write the RTC tensors of every step (rtc.y, rtc.w, denoise.sNN.x / v /\n"
                                "v_model / rtc_corr) to a safetensors file"};
    return s;
}

/* .npy reader for what tool_write_actions writes (and numpy's np.save of a 2-D/3-D float array). */
static int read_npy(const char *path, float **out, int64_t *rows, int64_t *cols) {
    FILE *f = fopen(path, "rb");
    if (!f) return cli_error("%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[10];
    char hdr[1024];
    int rc = 1;
    double *tmp = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) || pre[6] != 1) {
        cli_error("%s: not a version-1 .npy file", path);
        goto done;
    }
    size_t hl = pre[8] | (size_t)pre[9] << 8;
    if (hl >= sizeof hdr || fread(hdr, 1, hl, f) != hl) { cli_error("%s: bad .npy header length %zu", path, hl); goto done; }
    hdr[hl] = 0;
    int f8 = strstr(hdr, "'<f8'") != NULL;
    if ((!f8 && !strstr(hdr, "'<f4'")) || strstr(hdr, "True")) {
        cli_error("%s: expected little-endian float32/float64 in C order, header %s", path, hdr);
        goto done;
    }
    const char *sh = strstr(hdr, "'shape': (");
    long d[3] = {0, 0, 0};
    int nd = sh ? sscanf(sh + 10, "%ld, %ld, %ld", &d[0], &d[1], &d[2]) : 0;
    if (nd == 3 && d[0] == 1) { d[0] = d[1]; d[1] = d[2]; nd = 2; }
    if (nd != 2 || d[0] <= 0 || d[1] <= 0 || d[0] > 100000 || d[1] > 4096) {
        cli_error("%s: expected shape (rows, cols) or (1, rows, cols), header %s", path, hdr);
        goto done;
    }
    size_t n = (size_t)d[0] * (size_t)d[1];
    *out = malloc(n * sizeof(float));
    tmp = f8 ? malloc(n * sizeof(double)) : NULL;
    if (!*out || (f8 && !tmp)) { cli_error("out of memory"); goto done; }
    size_t got = f8 ? fread(tmp, sizeof(double), n, f) : fread(*out, sizeof(float), n, f);
    if (got != n) { cli_error("%s: file ends after %zu of %zu values", path, got, n); goto done; }
    if (f8) for (size_t i = 0; i < n; i++) (*out)[i] = (float)tmp[i];
    *rows = d[0];
    *cols = d[1];
    rc = 0;
done:
    if (rc) { free(*out); *out = NULL; }
    free(tmp);
    fclose(f);
    return rc;
}

static int read_safetensors(const char *path, float **out, int64_t *rows, int64_t *cols) {
    pi0_st_file *f;
    if (pi0_st_open(path, &f) != PI0_OK) return cli_error("%s", pi0_last_error());
    const pi0_st_tensor *t = pi0_st_find(f, "actions");
    int rc = 1;
    if (!t) cli_error("%s: no tensor 'actions'", path);
    else if (!(t->ndim == 2 || (t->ndim == 3 && t->shape[0] == 1)))
        cli_error("%s: tensor 'actions' must be [rows, cols] or [1, rows, cols]", path);
    else if (pi0_st_read_f32(f, "actions", out, NULL) != PI0_OK) cli_error("%s", pi0_last_error());
    else {
        *rows = t->shape[t->ndim - 2];
        *cols = t->shape[t->ndim - 1];
        rc = 0;
    }
    pi0_st_close(f);
    return rc;
}

int rtc_cli_prepare(rtc_cli *o, int cols, const pi0_rtc_params **rtc) {
    *rtc = NULL;
    int given = (o->delay >= 0) + (o->horizon >= 0) + (o->prev_path != NULL);
    if (given == 0) return 0;
    if (given != 3) return cli_error("real-time chunking needs --prev-actions, --delay and --horizon together");
    size_t len = strlen(o->prev_path);
    float *all = NULL;
    int64_t rows = 0, c = 0;
    int bad = len > 4 && !strcmp(o->prev_path + len - 4, ".npy") ? read_npy(o->prev_path, &all, &rows, &c)
                                                                  : read_safetensors(o->prev_path, &all, &rows, &c);
    if (bad) return 1;
    if (cols > 0 && c != cols) {
        free(all);
        return cli_error("%s: %lld action columns, expected %d (the previous chunk of this model/robot)", o->prev_path,
                         (long long)c, cols);
    }
    if (o->horizon > rows) {
        free(all);
        return cli_error("--horizon %d: the previous chunk in %s has only %lld rows", o->horizon, o->prev_path,
                         (long long)rows);
    }
    free(o->prev);
    o->prev = all;
    o->params.delay = o->delay;
    o->params.horizon = o->horizon;
    o->params.prev_actions = all + (size_t)o->horizon * (size_t)c;
    o->params.n_prev = (int)(rows - o->horizon);
    o->params.prev_dim = (int)c;
    *rtc = &o->params;
    return 0;
}

// ---- --taps ---------------------------------------------------------------------------------

struct rtc_taps {
    pi0_st_writer *w;
    float **bufs;
    int n, cap;
};

rtc_taps *rtc_taps_new(void) {
    rtc_taps *tp = calloc(1, sizeof *tp);
    if (tp && !(tp->w = pi0_st_writer_new())) { free(tp); tp = NULL; }
    return tp;
}

/* rtc.* (before the loop), and a step's denoise.sNN.<what> for the four RTC tensors: the step is
 * t->step, the name's last component says which tensor. */
static int wanted(const pi0_tensor_view *t) {
    if (!strncmp(t->name, "rtc.", 4)) return 1;
    const char *k = strrchr(t->name, '.');
    if (t->step < 0 || strncmp(t->name, "denoise.", 8) || !k) return 0;
    k++;
    return !strcmp(k, "x") || !strcmp(k, "v") || !strcmp(k, "v_model") || !strcmp(k, "rtc_corr");
}

void rtc_taps_cb(const pi0_tensor_view *t, void *user) {
    rtc_taps *tp = user;
    if (!wanted(t)) return;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    if (tp->n == tp->cap) {
        int cap = tp->cap ? 2 * tp->cap : 64;
        float **b = realloc(tp->bufs, sizeof *b * (size_t)cap);
        if (!b) return;
        tp->bufs = b;
        tp->cap = cap;
    }
    float *copy = malloc(n * sizeof(float));
    if (!copy) return;
    memcpy(copy, t->data, n * sizeof(float));
    tp->bufs[tp->n++] = copy;
    pi0_st_writer_add(tp->w, t->name, PI0_DT_F32, t->ndim, t->shape, copy);
}

int rtc_taps_save(rtc_taps *tp, const char *path) {
    return pi0_st_writer_save(tp->w, path) != PI0_OK ? cli_error("%s", pi0_last_error()) : 0;
}

void rtc_taps_free(rtc_taps *tp) {
    if (!tp) return;
    for (int i = 0; i < tp->n; i++) free(tp->bufs[i]);
    free(tp->bufs);
    pi0_st_writer_free(tp->w);
    free(tp);
}
