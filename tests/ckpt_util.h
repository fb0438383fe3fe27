/* ckpt_util.h - test helper: write a copy of a checkpoint directory with every tensor rounded to
 * BF16 (round to nearest even), so the reference path and the bf16 fast path can be compared on
 * the very same weights. */
#ifndef PI0_CKPT_UTIL_H
#define PI0_CKPT_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/safetensors.h"

static inline int write_bf16_copy(const char *src, const char *dst) {
    char p[1024];
    mkdir(dst, 0755);
    snprintf(p, sizeof p, "cp %s/config.json %s/", src, dst);
    if (system(p) != 0) return -1;
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    pi0_st_file *f;
    if (pi0_st_open(p, &f) != PI0_OK) return -1;
    pi0_st_writer *w = pi0_st_writer_new();
    uint16_t **conv = calloc((size_t)f->n_tensors, sizeof *conv);
    for (int i = 0; i < f->n_tensors; i++) {
        const pi0_st_tensor *t = &f->tensors[i];
        conv[i] = malloc((size_t)(t->numel ? t->numel : 1) * 2);
        for (int64_t k = 0; k < t->numel; k++) {
            float x;
            memcpy(&x, (const char *)t->data + 4 * k, 4);
            conv[i][k] = pi0_f32_to_bf16(x);
        }
        pi0_st_writer_add(w, t->name, PI0_DT_BF16, t->ndim, t->shape, conv[i]);
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dst);
    int rc = pi0_st_writer_save(w, p) == PI0_OK ? 0 : -1;
    for (int i = 0; i < f->n_tensors; i++) free(conv[i]);
    free(conv);
    pi0_st_writer_free(w);
    pi0_st_close(f);
    return rc;
}

#endif
