/* rtc_keys.c - real-time chunking request keys of `pi0 serve` (see rtc_keys.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_keys.h"

static const pi0_array *find_key(const pi0_mpk_obs *obs, const char *key) {
    for (int i = 0; i < obs->n_arrays; i++)
        if (!strcmp(obs->arrays[i].key, key)) return &obs->arrays[i];
    return NULL;
}

/* Element i of a numeric array as double; -1 for a dtype that is not a number. */
static int get_f64(const pi0_array *a, size_t i, double *v) {
    const void *p = a->data;
    switch (a->dtype) {
    case PI0_ARR_F32: *v = ((const float *)p)[i]; return 0;
    case PI0_ARR_F64: *v = ((const double *)p)[i]; return 0;
    case PI0_ARR_I32: *v = ((const int32_t *)p)[i]; return 0;
    case PI0_ARR_I64: *v = (double)((const int64_t *)p)[i]; return 0;
    case PI0_ARR_I16: *v = ((const int16_t *)p)[i]; return 0;
    case PI0_ARR_U16: *v = ((const uint16_t *)p)[i]; return 0;
    case PI0_ARR_I8: *v = ((const int8_t *)p)[i]; return 0;
    case PI0_ARR_U8: *v = ((const uint8_t *)p)[i]; return 0;
    case PI0_ARR_U32: *v = ((const uint32_t *)p)[i]; return 0;
    default: return -1;
    }
}

int pi0_serve_rtc_keys(const pi0_mpk_obs *obs, int H, const pi0_rtc_params *base, pi0_rtc_params *out, float **buf,
                       char *err, size_t err_cap) {
    *buf = NULL;
    const pi0_array *prev = find_key(obs, "rtc_prev_actions"), *delay = find_key(obs, "rtc_inference_delay");
    if (!prev && !delay) return 0;
    if (!prev || !delay) {
        snprintf(err, err_cap, "real-time chunking: got '%s' without '%s'; send both (or neither)",
                 prev ? "rtc_prev_actions" : "rtc_inference_delay", prev ? "rtc_inference_delay" : "rtc_prev_actions");
        return -1;
    }
    double dv;
    if (delay->ndim != 0 || delay->dtype == PI0_ARR_F32 || delay->dtype == PI0_ARR_F64 || get_f64(delay, 0, &dv) ||
        dv < 0 || dv > H) {
        snprintf(err, err_cap, "'rtc_inference_delay': expected an integer 0..%d (control steps)", H);
        return -1;
    }
    int nd = prev->ndim, rows = nd >= 2 ? (int)prev->shape[nd - 2] : 0, cols = nd >= 2 ? (int)prev->shape[nd - 1] : 0;
    double probe;
    if (!(nd == 2 || (nd == 3 && prev->shape[0] == 1)) || get_f64(prev, 0, &probe) < 0 || rows < 1 || cols < 1) {
        snprintf(err, err_cap, "'rtc_prev_actions': expected a numeric array [rows, action columns] (the previous "
                 "reply's actions not executed yet), got %d dims", nd);
        return -1;
    }
    if (rows > H) {
        snprintf(err, err_cap, "'rtc_prev_actions' has %d rows, more than the action horizon %d (send the previous "
                 "reply's actions not executed yet)", rows, H);
        return -1;
    }
    int d = (int)dv, s = H - rows;
    if (d > rows || d > s) {
        snprintf(err, err_cap, "'rtc_inference_delay' = %d must be <= the %d rows of 'rtc_prev_actions' and <= the %d "
                 "actions executed since that reply (H - rows): RTC needs d <= s <= H - d", d, rows, s);
        return -1;
    }
    size_t n = (size_t)rows * (size_t)cols;
    float *y = malloc(n * sizeof(float));
    if (!y) {
        snprintf(err, err_cap, "request: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        double v = 0;
        get_f64(prev, i, &v);
        y[i] = (float)v;
    }
    *out = *base;
    out->delay = d;
    out->horizon = s;
    out->prev_actions = y;
    out->n_prev = rows;
    out->prev_dim = cols;
    *buf = y;
    return 1;
}
