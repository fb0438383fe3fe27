/* debug_compare.h - keep copies of tapped intermediates and compare two runs' copies: what `pi0 check`
 * and the model tests (test_model_ref, test_model_fast) share. Rows are matched by their index in the
 * full prefix (or suffix), since the fast path drops masked prefix rows and caches π0's state token;
 * the metrics are PCC and the max relative error (max |a - b| over max |b|), accumulated in double.
 * Internal, like debug.h (which includes it); not part of the public API. */
#ifndef PI0_DEBUG_COMPARE_H
#define PI0_DEBUG_COMPARE_H

#include <stdint.h>

#include "pi0.h"

/* A copy of one tapped tensor; a 1-D tensor is one row. */
typedef struct {
    char name[96];
    pi0_stage stage;
    int step;
    float *data;
    int64_t rows, cols, numel;
    int32_t *ids; /* each row's index: the tap's rows[r], else row0 + r */
} pi0_tap_copy;

typedef struct {
    pi0_tap_copy *t;
    int n, cap;
    int dropped; /* tensors not kept for lack of memory (their lookups then fail) */
} pi0_tap_store;

/* A pi0_tap_fn: tap_user is a zero-initialized pi0_tap_store, freed with pi0_tap_store_free. */
void pi0_tap_store_cb(const pi0_tensor_view *v, void *user);
/* The last copy of that name, or NULL. */
const pi0_tap_copy *pi0_tap_find(const pi0_tap_store *s, const char *name);
void pi0_tap_store_free(pi0_tap_store *s);

typedef struct {
    int64_t n;      /* values compared */
    double pcc;     /* 1 when both sides are constant, 0 when one is or n = 0 */
    double max_abs; /* max |a - b| */
    double max_ref; /* max |b| */
    double rel;     /* max_abs / max(max_ref, 1e-30) */
} pi0_compare;

double pi0_pcc(const float *a, const float *b, int64_t n);
double pi0_max_abs(const float *x, int64_t n);
/* a against the reference b, element by element. */
pi0_compare pi0_compare_arrays(const float *a, const float *b, int64_t n);
/* The rows a and the reference b both hold (same id), skipping ids with valid[id] == 0 or id >=
 * n_valid when valid is given. Returns 0, or -1 when out of memory (r->n = 0). */
int pi0_compare_taps(const pi0_tap_copy *a, const pi0_tap_copy *b, const uint8_t *valid, int64_t n_valid, pi0_compare *r);

#endif
