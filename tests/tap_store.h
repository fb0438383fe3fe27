/* tap_store.h - test helper: a pi0_tap_fn that keeps a copy of every tapped tensor by name. */
#ifndef PI0_TAP_STORE_H
#define PI0_TAP_STORE_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pi0.h"

typedef struct {
    char name[96];
    float *data;
    int64_t numel;
    int ndim;
    int64_t shape[4];
    int32_t *rows; /* copy, or NULL */
    int row0;
} tapped;

typedef struct {
    tapped *t;
    int n, cap;
} tap_store;

static inline void tap_store_cb(const pi0_tensor_view *v, void *user) {
    tap_store *ts = user;
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? 2 * ts->cap : 64;
        ts->t = realloc(ts->t, (size_t)ts->cap * sizeof *ts->t);
    }
    tapped *t = &ts->t[ts->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", v->name);
    t->ndim = v->ndim;
    t->numel = 1;
    for (int i = 0; i < v->ndim; i++) { t->shape[i] = v->shape[i]; t->numel *= v->shape[i]; }
    if (v->ndim == 1) { t->ndim = 2; t->shape[0] = 1; t->shape[1] = v->shape[0]; } /* 1-D = one row */
    t->data = malloc((size_t)t->numel * sizeof(float));
    memcpy(t->data, v->data, (size_t)t->numel * sizeof(float));
    t->row0 = v->row0;
    if (v->rows) {
        t->rows = malloc((size_t)t->shape[0] * sizeof(int32_t));
        memcpy(t->rows, v->rows, (size_t)t->shape[0] * sizeof(int32_t));
    }
}

static inline const tapped *tap_find(const tap_store *ts, const char *name) {
    for (int i = ts->n - 1; i >= 0; i--)
        if (strcmp(ts->t[i].name, name) == 0) return &ts->t[i];
    return NULL;
}

static inline void tap_store_free(tap_store *ts) {
    for (int i = 0; i < ts->n; i++) { free(ts->t[i].data); free(ts->t[i].rows); }
    free(ts->t);
    memset(ts, 0, sizeof *ts);
}

static inline double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

#endif
