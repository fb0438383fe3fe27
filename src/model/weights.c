/* weights.c - open the checkpoint's safetensors file(s) and bind every expected tensor.
 *
 * Names are normalized before lookup (PI0_MODEL.md §6.2-§6.3): one leading "model." is stripped
 * (LeRobot-saved files) and the pre-Oct-2025 LeRobot module paths are rewritten to the current ones.
 * Each expected tensor is checked for presence, shape and dtype (F32, BF16, F16) before anything
 * runs; the first problem is reported with the file, tensor name, found and expected shape.
 * Matrices stay in the mapped file (pi0_weight); vectors (norms, biases, position embedding) are
 * converted to float32 arrays owned by the context. Tensors nobody asked for are reported once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "debug.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "io/shard_index.h"
#include "model/model.h"
#include "model/variant.h"

typedef struct {
    char *name;                /* normalized name */
    const pi0_st_tensor *t;
    const pi0_st_file *file;
    int used;
} entry;

typedef struct pi0_binder {
    pi0_ctx *ctx;
    entry *e;
    int n;
    /* list mode (pi0_weights_expected): report each expected tensor instead of binding it */
    void (*list)(const char *name, int nd, const int64_t *shape, void *user);
    void *list_user;
} binder;

#define P "paligemma_with_expert."
#define VIS P "paligemma.model.vision_tower.vision_model."
#define LM P "paligemma.model.language_model."
#define EXP P "gemma_expert.model."

static const char *rewrites[][2] = {
    {"paligemma_with_expert.paligemma.language_model.model.", LM},
    {"paligemma_with_expert.paligemma.language_model.lm_head.", P "paligemma.lm_head."},
    {"paligemma_with_expert.paligemma.vision_tower.", P "paligemma.model.vision_tower."},
    {"paligemma_with_expert.paligemma.multi_modal_projector.", P "paligemma.model.multi_modal_projector."},
};

static char *normalize_name(const char *raw) {
    const char *s = strncmp(raw, "model.", 6) == 0 ? raw + 6 : raw;
    for (size_t i = 0; i < sizeof rewrites / sizeof rewrites[0]; i++) {
        size_t n = strlen(rewrites[i][0]);
        if (strncmp(s, rewrites[i][0], n) == 0) {
            size_t m = strlen(rewrites[i][1]) + strlen(s + n) + 1;
            char *out = malloc(m);
            if (out) snprintf(out, m, "%s%s", rewrites[i][1], s + n);
            return out;
        }
    }
    return strdup(s);
}

static int cmp_entry(const void *a, const void *b) { return strcmp(((const entry *)a)->name, ((const entry *)b)->name); }

static entry *find(binder *b, const char *name) {
    if (b->list) return NULL;
    int lo = 0, hi = b->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(b->e[mid].name, name);
        if (c == 0) return &b->e[mid];
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

static void *own(pi0_ctx *ctx, void *p) {
    if (!p) return NULL;
    if (ctx->n_owned == ctx->cap_owned) {
        int cap = ctx->cap_owned ? 2 * ctx->cap_owned : 256;
        void **o = realloc(ctx->owned, (size_t)cap * sizeof *o);
        if (!o) { free(p); return NULL; }
        ctx->owned = o;
        ctx->cap_owned = cap;
    }
    ctx->owned[ctx->n_owned++] = p;
    return p;
}

static void shape_str(char *buf, size_t n, int nd, const int64_t *sh) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)sh[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Look up `name` and check its shape (nd dims in want). */
static pi0_status lookup(binder *b, const char *name, int nd, const int64_t *want, entry **out) {
    entry *e = find(b, name);
    char ws[96], fs[96];
    shape_str(ws, sizeof ws, nd, want);
    if (!e) {
        const pi0_st_file *f = ((pi0_st_file **)b->ctx->files)[0];
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s' missing (expected shape %s)", f->path, name, ws);
    }
    const pi0_st_tensor *t = e->t;
    int ok = t->ndim == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        shape_str(fs, sizeof fs, t->ndim, t->shape);
        return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': shape %s, expected %s", e->file->path, t->name, fs, ws);
    }
    if (t->dtype != PI0_DT_F32 && t->dtype != PI0_DT_BF16 && t->dtype != PI0_DT_F16)
        return pi0_err(PI0_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s, expected F32, BF16 or F16", e->file->path,
                       t->name, pi0_dtype_name(t->dtype));
    e->used = 1;
    b->ctx->n_params += t->numel;
    b->ctx->n_bytes += (int64_t)t->nbytes;
    *out = e;
    return PI0_OK;
}

static pi0_status add_matrix(pi0_ctx *ctx, pi0_weight *w, int role) {
    if (ctx->n_matrices == ctx->cap_matrices) {
        int cap = ctx->cap_matrices ? 2 * ctx->cap_matrices : 256;
        pi0_weight **m = realloc(ctx->matrices, (size_t)cap * sizeof *m);
        if (!m) return pi0_err(PI0_ERR_NOMEM, "out of memory binding weights");
        ctx->matrices = m;
        unsigned char *r = realloc(ctx->roles, (size_t)cap);
        if (!r) return pi0_err(PI0_ERR_NOMEM, "out of memory binding weights");
        ctx->roles = r;
        ctx->cap_matrices = cap;
    }
    ctx->roles[ctx->n_matrices] = (unsigned char)role;
    ctx->matrices[ctx->n_matrices++] = w;
    return PI0_OK;
}

/* A matrix (rows, cols) of the given pi0_weight_role; conv weights are given as (rows, C, p, p) and
 * flattened. */
static pi0_status bind_mat(binder *b, pi0_weight *w, int role, const char *name, int nd, const int64_t *shape) {
    entry *e;
    if (b->list) { b->list(name, nd, shape, b->list_user); return PI0_OK; }
    pi0_status s = lookup(b, name, nd, shape, &e);
    if (s) return s;
    w->name = e->t->name;
    w->dtype = e->t->dtype;
    w->data = e->t->data;
    w->rows = shape[0];
    w->cols = e->t->numel / shape[0];
    w->packed = NULL;
    w->geglu_up = w->geglu_gate = NULL; /* bind_gemma links its gate and up */
    return add_matrix(b->ctx, w, role);
}

static pi0_status bind_mat2(binder *b, pi0_weight *w, int role, const char *name, int64_t rows, int64_t cols) {
    int64_t sh[2] = {rows, cols};
    return bind_mat(b, w, role, name, 2, sh);
}

/* A vector or small table, converted to float32 (exact widening). */
static pi0_status bind_vec(binder *b, float **out, const char *name, int nd, const int64_t *shape) {
    entry *e;
    if (b->list) { b->list(name, nd, shape, b->list_user); return PI0_OK; }
    pi0_status s = lookup(b, name, nd, shape, &e);
    if (s) return s;
    float *v = own(b->ctx, malloc((size_t)(e->t->numel ? e->t->numel : 1) * sizeof *v));
    if (!v) return pi0_err(PI0_ERR_NOMEM, "tensor '%s': out of memory", name);
    pi0_weight tmp = {.dtype = e->t->dtype, .data = e->t->data};
    for (int64_t i = 0; i < e->t->numel; i++) v[i] = pi0_weight_at(&tmp, i);
    *out = v;
    return PI0_OK;
}

static pi0_status bind_vec1(binder *b, float **out, const char *name, int64_t n) { return bind_vec(b, out, name, 1, &n); }

/* Split a matrix's columns [c0, c0 + nc) into a new contiguous matrix (same dtype and role), owned by ctx. */
static pi0_status split_cols(binder *b, pi0_weight *dst, const pi0_weight *src, int role, int64_t c0, int64_t nc) {
    if (b->list) return PI0_OK;
    size_t es = pi0_dtype_size(src->dtype);
    char *d = own(b->ctx, malloc((size_t)(src->rows * nc) * es));
    if (!d) return pi0_err(PI0_ERR_NOMEM, "tensor '%s': out of memory", src->name);
    for (int64_t r = 0; r < src->rows; r++)
        memcpy(d + (size_t)(r * nc) * es, (const char *)src->data + (size_t)(r * src->cols + c0) * es, (size_t)nc * es);
    *dst = *src;
    dst->data = d;
    dst->cols = nc;
    return add_matrix(b->ctx, dst, role);
}

/* variant.h: what a model family's bind uses. A family's own matrices are its time MLPs and state
 * projection: heads, kept out of int8 (PI0_ROLE_HEAD). */
pi0_status pi0_bind_matrix(binder *b, pi0_weight *w, const char *name, int64_t rows, int64_t cols) {
    return bind_mat2(b, w, PI0_ROLE_HEAD, name, rows, cols);
}

pi0_status pi0_bind_vector(binder *b, float **out, const char *name, int64_t n) { return bind_vec1(b, out, name, n); }

pi0_status pi0_bind_matrix_split(binder *b, pi0_weight *left, pi0_weight *right, const char *name, int64_t rows,
                                 int64_t cols, int64_t split) {
    pi0_weight full;
    pi0_status s = bind_mat2(b, &full, PI0_ROLE_HEAD, name, rows, cols);
    if (s) return s;
    if (!b->list) b->ctx->n_matrices--; /* only the two parts are used by the model */
    if ((s = split_cols(b, left, &full, PI0_ROLE_HEAD, 0, split))) return s;
    return split_cols(b, right, &full, PI0_ROLE_HEAD, split, cols - split);
}

int pi0_bind_present(binder *b, const char *name) { return find(b, name) != NULL; }

static char *fmt(char *buf, size_t n, const char *f, int i, const char *tail) {
    snprintf(buf, n, f, i, tail);
    return buf;
}

#define TRY(x) do { pi0_status s_ = (x); if (s_) return s_; } while (0)

/* One Gemma block; `role` tags its linear layers (VLM or expert), the adaptive-norm dense layers are
 * PI0_ROLE_MODULATION. */
static pi0_status bind_gemma(binder *b, pi0_gemma_layer *L, int role, const char *pre, int i, int D, int Mx, int ada, int We) {
    const pi0_config *c = &b->ctx->cfg;
    int64_t HD = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    char n[256], f[128];
    snprintf(f, sizeof f, "%slayers.%%d.%%s", pre);
    if (ada) {
        TRY(bind_mat2(b, &L->attn_ada, PI0_ROLE_MODULATION, fmt(n, sizeof n, f, i, "input_layernorm.dense.weight"), 3 * D, We));
        TRY(bind_vec1(b, &L->attn_ada_b, fmt(n, sizeof n, f, i, "input_layernorm.dense.bias"), 3 * D));
        TRY(bind_mat2(b, &L->mlp_ada, PI0_ROLE_MODULATION, fmt(n, sizeof n, f, i, "post_attention_layernorm.dense.weight"), 3 * D, We));
        TRY(bind_vec1(b, &L->mlp_ada_b, fmt(n, sizeof n, f, i, "post_attention_layernorm.dense.bias"), 3 * D));
    } else {
        TRY(bind_vec1(b, &L->attn_norm, fmt(n, sizeof n, f, i, "input_layernorm.weight"), D));
        TRY(bind_vec1(b, &L->mlp_norm, fmt(n, sizeof n, f, i, "post_attention_layernorm.weight"), D));
    }
    TRY(bind_mat2(b, &L->q, role, fmt(n, sizeof n, f, i, "self_attn.q_proj.weight"), HD, D));
    TRY(bind_mat2(b, &L->k, role, fmt(n, sizeof n, f, i, "self_attn.k_proj.weight"), KV, D));
    TRY(bind_mat2(b, &L->v, role, fmt(n, sizeof n, f, i, "self_attn.v_proj.weight"), KV, D));
    TRY(bind_mat2(b, &L->o, role, fmt(n, sizeof n, f, i, "self_attn.o_proj.weight"), D, HD));
    TRY(bind_mat2(b, &L->gate, role, fmt(n, sizeof n, f, i, "mlp.gate_proj.weight"), Mx, D));
    TRY(bind_mat2(b, &L->up, role, fmt(n, sizeof n, f, i, "mlp.up_proj.weight"), Mx, D));
    L->gate.geglu_up = &L->up; /* one GeGLU: a backend may prepare the two as one matrix (ops.h) */
    L->up.geglu_gate = &L->gate;
    TRY(bind_mat2(b, &L->down, role, fmt(n, sizeof n, f, i, "mlp.down_proj.weight"), D, Mx));
    return PI0_OK;
}

static pi0_status bind_all(binder *b) {
    pi0_ctx *ctx = b->ctx;
    const pi0_config *c = &ctx->cfg;
    pi0_weights *w = &ctx->w;
    int64_t Dv = c->vision_width, Iv = c->vision_mlp_dim, p = c->patch_size, g = c->image_size / p;
    int64_t W = c->vlm_width, We = c->expert_width, A = c->action_dim;
    char n[256];

    /* vision tower */
    int64_t conv[4] = {Dv, c->n_channels, p, p}, pos[2] = {g * g, Dv};
    TRY(bind_mat(b, &w->patch, PI0_ROLE_VISION, VIS "embeddings.patch_embedding.weight", 4, conv));
    TRY(bind_vec1(b, &w->patch_b, VIS "embeddings.patch_embedding.bias", Dv));
    TRY(bind_vec(b, &w->pos_emb, VIS "embeddings.position_embedding.weight", 2, pos));
    w->vision = own(ctx, calloc((size_t)c->vision_depth, sizeof *w->vision));
    if (!w->vision) return pi0_err(PI0_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->vision_depth; i++) {
        pi0_vision_layer *L = &w->vision[i];
        const char *f = VIS "encoder.layers.%d.%s";
        TRY(bind_vec1(b, &L->ln1_w, fmt(n, sizeof n, f, i, "layer_norm1.weight"), Dv));
        TRY(bind_vec1(b, &L->ln1_b, fmt(n, sizeof n, f, i, "layer_norm1.bias"), Dv));
        TRY(bind_vec1(b, &L->ln2_w, fmt(n, sizeof n, f, i, "layer_norm2.weight"), Dv));
        TRY(bind_vec1(b, &L->ln2_b, fmt(n, sizeof n, f, i, "layer_norm2.bias"), Dv));
        TRY(bind_mat2(b, &L->q, PI0_ROLE_VISION_LINEAR, fmt(n, sizeof n, f, i, "self_attn.q_proj.weight"), Dv, Dv));
        TRY(bind_mat2(b, &L->k, PI0_ROLE_VISION_LINEAR, fmt(n, sizeof n, f, i, "self_attn.k_proj.weight"), Dv, Dv));
        TRY(bind_mat2(b, &L->v, PI0_ROLE_VISION_LINEAR, fmt(n, sizeof n, f, i, "self_attn.v_proj.weight"), Dv, Dv));
        TRY(bind_mat2(b, &L->o, PI0_ROLE_VISION_LINEAR, fmt(n, sizeof n, f, i, "self_attn.out_proj.weight"), Dv, Dv));
        TRY(bind_vec1(b, &L->q_b, fmt(n, sizeof n, f, i, "self_attn.q_proj.bias"), Dv));
        TRY(bind_vec1(b, &L->k_b, fmt(n, sizeof n, f, i, "self_attn.k_proj.bias"), Dv));
        TRY(bind_vec1(b, &L->v_b, fmt(n, sizeof n, f, i, "self_attn.v_proj.bias"), Dv));
        TRY(bind_vec1(b, &L->o_b, fmt(n, sizeof n, f, i, "self_attn.out_proj.bias"), Dv));
        TRY(bind_mat2(b, &L->fc1, PI0_ROLE_VISION_LINEAR, fmt(n, sizeof n, f, i, "mlp.fc1.weight"), Iv, Dv));
        TRY(bind_vec1(b, &L->fc1_b, fmt(n, sizeof n, f, i, "mlp.fc1.bias"), Iv));
        TRY(bind_mat2(b, &L->fc2, PI0_ROLE_VISION_LINEAR, fmt(n, sizeof n, f, i, "mlp.fc2.weight"), Dv, Iv));
        TRY(bind_vec1(b, &L->fc2_b, fmt(n, sizeof n, f, i, "mlp.fc2.bias"), Dv));
    }
    TRY(bind_vec1(b, &w->post_ln_w, VIS "post_layernorm.weight", Dv));
    TRY(bind_vec1(b, &w->post_ln_b, VIS "post_layernorm.bias", Dv));
    TRY(bind_mat2(b, &w->proj, PI0_ROLE_PROJECTOR, P "paligemma.model.multi_modal_projector.linear.weight", W, Dv));
    TRY(bind_vec1(b, &w->proj_b, P "paligemma.model.multi_modal_projector.linear.bias", W));

    /* VLM: the embedding may be stored only under the tied lm_head name (§6.2). */
    const char *emb = find(b, LM "embed_tokens.weight") ? LM "embed_tokens.weight" : P "paligemma.lm_head.weight";
    if (!find(b, emb)) emb = LM "embed_tokens.weight"; /* report (or list) the usual name */
    TRY(bind_mat2(b, &w->embed, PI0_ROLE_EMBED, emb, c->vocab_size, W));
    w->vlm = own(ctx, calloc((size_t)c->vlm_depth, sizeof *w->vlm));
    w->expert = own(ctx, calloc((size_t)c->expert_depth, sizeof *w->expert));
    if (!w->vlm || !w->expert) return pi0_err(PI0_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->vlm_depth; i++) TRY(bind_gemma(b, &w->vlm[i], PI0_ROLE_VLM_LINEAR, LM, i, (int)W, c->vlm_mlp_dim, 0, (int)We));
    TRY(bind_vec1(b, &w->vlm_norm, LM "norm.weight", W));

    /* action expert: its norms as the family says (variant.h) */
    const pi0_variant_desc *vd = pi0_variant_get(c->variant);
    if (!vd) return pi0_err(PI0_ERR_UNSUPPORTED, "model variant %d unknown", c->variant);
    int ada = vd->expert_norm == PI0_EXPERT_NORM_ADAPTIVE;
    for (int i = 0; i < c->expert_depth; i++)
        TRY(bind_gemma(b, &w->expert[i], PI0_ROLE_EXPERT_LINEAR, EXP, i, (int)We, c->expert_mlp_dim, ada, (int)We));
    if (ada) {
        TRY(bind_mat2(b, &w->expert_norm_ada, PI0_ROLE_MODULATION, EXP "norm.dense.weight", 3 * We, We));
        TRY(bind_vec1(b, &w->expert_norm_ada_b, EXP "norm.dense.bias", 3 * We));
    } else {
        TRY(bind_vec1(b, &w->expert_norm, EXP "norm.weight", We));
    }

    /* projections */
    TRY(bind_mat2(b, &w->action_in, PI0_ROLE_HEAD, "action_in_proj.weight", We, A));
    TRY(bind_vec1(b, &w->action_in_b, "action_in_proj.bias", We));
    TRY(bind_mat2(b, &w->action_out, PI0_ROLE_HEAD, "action_out_proj.weight", A, We));
    TRY(bind_vec1(b, &w->action_out_b, "action_out_proj.bias", A));
    /* the family's own tensors (time MLP, state projection) */
    TRY(pi0_variant_stages_of(vd->id)->bind(b, w, c));
    return PI0_OK;
}

/* Known tensors that π0 never reads at inference (§6.7): not worth a warning. */
static int known_unused(const char *name) {
    return strcmp(name, P "gemma_expert.lm_head.weight") == 0 || strcmp(name, P "paligemma.lm_head.weight") == 0 ||
           strstr(name, "gemma_expert.model.embed_tokens") != NULL ||
           /* lerobot <= 0.3 normalization statistics: read by the policy (io/lerobot.c), not the model */
           strncmp(name, "normalize_inputs.", 17) == 0 || strncmp(name, "normalize_targets.", 18) == 0 ||
           strncmp(name, "unnormalize_outputs.", 20) == 0;
}

static pi0_status open_files(pi0_ctx *ctx, const char *dir) {
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    pi0_shard_list shards = {NULL, 0};
    static char single[] = "model.safetensors";
    char *one[1] = {single};
    pi0_status s;
    if (stat(path, &sb) == 0) {
        char *buf;
        size_t len;
        if ((s = pi0_file_read(path, "shard index", 64u << 20, &buf, &len))) return s;
        s = pi0_index_parse(buf, len, path, &shards);
        free(buf);
        if (s) return s;
    } else {
        shards.names = one;
        shards.n = 1;
    }
    pi0_st_file **files = calloc((size_t)shards.n, sizeof *files);
    if (!files) { s = pi0_err(PI0_ERR_NOMEM, "out of memory"); goto done; }
    ctx->files = files;
    s = PI0_OK;
    for (int i = 0; i < shards.n && s == PI0_OK; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, shards.names[i]);
        s = pi0_st_open(path, &files[i]);
        if (s == PI0_OK) ctx->n_files++;
        if (ctx->params.progress)
            ctx->params.progress(0.1f * (float)(i + 1) / (float)shards.n, "mapping weights", ctx->params.progress_user);
    }
done:
    if (shards.names != one) pi0_shard_list_free(&shards);
    return s;
}

pi0_status pi0_weights_bind(pi0_ctx *ctx, const char *dir, int variant_given) {
    pi0_status s = open_files(ctx, dir);
    if (s) return s;
    binder b = {ctx, NULL, 0, NULL, NULL};
    pi0_st_file **files = ctx->files;
    int total = 0;
    for (int i = 0; i < ctx->n_files; i++) total += files[i]->n_tensors;
    b.e = calloc((size_t)(total ? total : 1), sizeof *b.e);
    if (!b.e) return pi0_err(PI0_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ctx->n_files; i++)
        for (int j = 0; j < files[i]->n_tensors; j++) {
            entry *e = &b.e[b.n++];
            e->t = &files[i]->tensors[j];
            e->file = files[i];
            e->name = normalize_name(e->t->name);
            if (!e->name) { s = pi0_err(PI0_ERR_NOMEM, "out of memory"); goto done; }
        }
    qsort(b.e, (size_t)b.n, sizeof *b.e, cmp_entry);
    for (int i = 1; i < b.n; i++)
        if (strcmp(b.e[i].name, b.e[i - 1].name) == 0) {
            s = pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s' is stored twice (as '%s' and '%s')", b.e[i].file->path,
                        b.e[i].name, b.e[i - 1].t->name, b.e[i].t->name);
            goto done;
        }
    /* When config.json does not name the family, a tensor only that family has does (π0.5: its
     * adaptive-norm dense layers, §6.2); else it is the fallback family (π0). */
    for (int i = 0; variant_given < 0 && i < pi0_variant_count(); i++) {
        const pi0_variant_desc *v = pi0_variant_get(i);
        if (v->marker && find(&b, v->marker)) {
            pi0_variant_set(&ctx->cfg, v->id);
            break;
        }
    }
    s = bind_all(&b);
    if (s == PI0_OK) {
        int unknown = 0;
        const char *first = NULL;
        for (int i = 0; i < b.n; i++)
            if (!b.e[i].used && !known_unused(b.e[i].name)) { unknown++; if (!first) first = b.e[i].t->name; }
        if (unknown)
            pi0_log(PI0_LOG_WARN, "%s: %d unknown tensor(s) ignored, first: '%s'", files[0]->path, unknown, first);
    }
done:
    for (int i = 0; i < b.n; i++) free(b.e[i].name);
    free(b.e);
    return s;
}

pi0_status pi0_weights_expected(const pi0_config *cfg, void (*fn)(const char *name, int nd, const int64_t *shape, void *user),
                                void *user) {
    pi0_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = *cfg;
    binder b = {&ctx, NULL, 0, fn, user};
    pi0_status s = bind_all(&b);
    for (int i = 0; i < ctx.n_owned; i++) free(ctx.owned[i]);
    free(ctx.owned);
    free(ctx.matrices);
    free(ctx.roles);
    return s;
}

void pi0_weight_kind_counts(const pi0_ctx *ctx, int kind, int int8_vision, int64_t out[3]) {
    out[0] = out[1] = out[2] = 0;
    for (int i = 0; ctx && i < ctx->n_matrices; i++) {
        int k = pi0_role_weight_kind(ctx->roles[i], kind, int8_vision);
        if (ctx->roles[i] != PI0_ROLE_EMBED && k >= 0 && k < 3) out[k] += ctx->matrices[i]->rows * ctx->matrices[i]->cols;
    }
}
