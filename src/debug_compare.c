/* debug_compare.c - see debug_compare.h. */
#include "debug_compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pi0_tap_store_cb(const pi0_tensor_view *v, void *user) {
    pi0_tap_store *s = user;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        pi0_tap_copy *t = realloc(s->t, (size_t)cap * sizeof *t);
        if (!t) { s->dropped++; return; }
        s->t = t;
        s->cap = cap;
    }
    pi0_tap_copy *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", v->name);
    t->stage = v->stage;
    t->step = v->step;
    t->rows = v->ndim == 1 ? 1 : v->shape[0];
    t->numel = 1;
    for (int i = 0; i < v->ndim && i < 4; i++) t->numel *= v->shape[i];
    t->cols = t->rows ? t->numel / t->rows : 0;
    t->data = malloc((size_t)t->numel * sizeof(float) + 1);
    t->ids = malloc((size_t)t->rows * sizeof(int32_t) + 1);
    if (!t->data || !t->ids) {
        free(t->data);
        free(t->ids);
        s->dropped++;
        return;
    }
    memcpy(t->data, v->data, (size_t)t->numel * sizeof(float));
    for (int64_t r = 0; r < t->rows; r++) t->ids[r] = v->rows ? v->rows[r] : (int32_t)(v->row0 + r);
    s->n++;
}

const pi0_tap_copy *pi0_tap_find(const pi0_tap_store *s, const char *name) {
    for (int i = s->n - 1; i >= 0; i--)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

void pi0_tap_store_free(pi0_tap_store *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->t[i].data);
        free(s->t[i].ids);
    }
    free(s->t);
    memset(s, 0, sizeof *s);
}

double pi0_pcc(const float *a, const float *b, int64_t n) {
    if (n <= 0) return 0.0;
    double ma = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
    ma /= (double)n;
    mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if (saa == 0 && sbb == 0) return 1.0;
    if (saa == 0 || sbb == 0) return 0.0;
    return sab / sqrt(saa * sbb);
}

double pi0_max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

pi0_compare pi0_compare_arrays(const float *a, const float *b, int64_t n) {
    pi0_compare r = {.n = n > 0 ? n : 0, .pcc = pi0_pcc(a, b, n)};
    for (int64_t i = 0; i < n; i++) {
        r.max_abs = fmax(r.max_abs, fabs((double)a[i] - b[i]));
        r.max_ref = fmax(r.max_ref, fabs((double)b[i]));
    }
    r.rel = r.max_abs / fmax(r.max_ref, 1e-30);
    return r;
}

int pi0_compare_taps(const pi0_tap_copy *a, const pi0_tap_copy *b, const uint8_t *valid, int64_t n_valid, pi0_compare *r) {
    *r = pi0_compare_arrays(NULL, NULL, 0);
    if (a->cols != b->cols) return 0; /* nothing comparable: n = 0 */
    float *ga = malloc((size_t)a->numel * sizeof *ga + 1), *gb = malloc((size_t)a->numel * sizeof *gb + 1);
    if (!ga || !gb) {
        free(ga);
        free(gb);
        return -1;
    }
    int64_t n = 0, cols = a->cols;
    for (int64_t i = 0; i < a->rows; i++) {
        int32_t id = a->ids[i];
        if (valid && (id < 0 || id >= n_valid || !valid[id])) continue;
        for (int64_t j = 0; j < b->rows; j++)
            if (b->ids[j] == id) {
                memcpy(ga + n, a->data + i * cols, (size_t)cols * sizeof *ga);
                memcpy(gb + n, b->data + j * cols, (size_t)cols * sizeof *gb);
                n += cols;
                break;
            }
    }
    *r = pi0_compare_arrays(ga, gb, n);
    free(ga);
    free(gb);
    return 0;
}
