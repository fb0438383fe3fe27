/* backend.c - the one place backends are listed and found (by pi0_backend_kind or by name), and
 * the default prepare / arena steps for backends that need none. A new backend (an accelerator, a
 * quantized CPU path) is one row in `g_backends` plus its own directory under src/ops/. */
#include <stdlib.h>
#include <string.h>

#include "ops/fast/fast.h"
#include "ops/ref/ref.h"

/* Indexed by pi0_backend_kind (pi0.h). */
static const pi0_backend *const g_backends[] = {
    [PI0_BACKEND_FAST] = &pi0_backend_fast,
    [PI0_BACKEND_REF] = &pi0_backend_ref,
};
#define N_BACKENDS ((int)(sizeof g_backends / sizeof g_backends[0]))

const pi0_backend *pi0_backend_get(pi0_backend_kind kind) {
    return (unsigned)kind < (unsigned)N_BACKENDS ? g_backends[kind] : NULL;
}

const pi0_backend *pi0_backend_find(const char *name) {
    for (int i = 0; name && i < N_BACKENDS; i++)
        if (g_backends[i] && strcmp(g_backends[i]->name, name) == 0) return g_backends[i];
    return NULL;
}

int pi0_backend_count(void) { return N_BACKENDS; }
const pi0_backend *pi0_backend_at(int i) { return i >= 0 && i < N_BACKENDS ? g_backends[i] : NULL; }
const pi0_backend *pi0_backend_reference(void) { return &pi0_backend_ref; }

pi0_status pi0_backend_prepare_weight(const pi0_backend *be, pi0_weight *w, int weight_kind) {
    if (!be->prepare) return PI0_OK;
    pi0_weight *const list[1] = {w};
    pi0_prepare_args a = {.w = list, .n = 1, .weight_kind = weight_kind, .n_threads = 1};
    return be->prepare(&a);
}

void pi0_backend_release_weight(const pi0_backend *be, pi0_weight *w) {
    pi0_weight *const list[1] = {w};
    if (be->release) be->release(list, 1);
}

void *pi0_backend_arena_alloc(const pi0_backend *be, size_t bytes) {
    if (be && be->arena_alloc) return be->arena_alloc(bytes);
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

void pi0_backend_arena_free(const pi0_backend *be, void *p) {
    if (be && be->arena_free) be->arena_free(p);
    else free(p);
}
