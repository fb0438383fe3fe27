/* tokenizer.c - SentencePiece BPE: ModelProto parsing, normalizer, BPE merge (see tokenizer.h).
 *
 * Mirrors sentencepiece 0.1.97: model_interface.cc (piece tables, user-defined matcher),
 * normalizer.cc (Normalizer::Normalize / NormalizePrefix), bpe_model.cc (Model::Encode) and
 * sentencepiece_processor.cc (byte fallback, merging of unknown runs). Written from the algorithm
 * description in PI0_IO.md §1.4; no code copied.
 *
 * Layout: the whole file is kept in memory and piece strings point into it. Two open-addressing
 * hash tables map piece bytes to ids, like sentencepiece's `pieces_` (NORMAL, USER_DEFINED,
 * UNUSED: these take part in merges) and `reserved_id_map_` (CONTROL, UNKNOWN, BYTE).
 */
#include "io/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "io/file.h"

typedef struct {
    const char *str; /* into tok->file; not NUL-terminated */
    uint32_t len;
    float score;
    uint8_t type; /* pi0_piece_type */
} piece;

typedef struct {
    int32_t *slot; /* piece id or -1 */
    uint32_t mask;
} hash_tab;

struct pi0_tokenizer {
    char *name;
    uint8_t *file;
    size_t file_size;
    int n_pieces;
    piece *pieces;
    hash_tab normal, reserved;
    int unk_id;
    int byte_id[256];
    /* user-defined pieces: first-byte filter and distinct lengths, longest first */
    uint8_t user_first[256];
    int n_user_lens;
    uint32_t *user_lens;
    int has_unused;
    /* trainer_spec */
    int model_type, byte_fallback, treat_ws_suffix;
    char *bos_piece, *eos_piece, *pad_piece, *unk_piece;
    /* normalizer_spec */
    char *norm_name;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    uint32_t *trie;      /* precompiled charsmap double array, NULL if none */
    size_t n_trie;
    const char *charsmap_norm; /* NUL-separated replacement strings (into file) */
    size_t charsmap_norm_size;
};

// ---------------------------------------------------------------------------------------------
// hash tables

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static pi0_status tab_init(hash_tab *t, int n) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n + (uint32_t)n / 2u + 1u) cap <<= 1; /* load factor <= 2/3 */
    t->slot = malloc(sizeof(int32_t) * cap);
    if (!t->slot) return pi0_err(PI0_ERR_NOMEM, "tokenizer: hash table of %u slots", cap);
    memset(t->slot, 0xff, sizeof(int32_t) * cap);
    t->mask = cap - 1;
    return PI0_OK;
}

static int tab_find(const pi0_tokenizer *tok, const hash_tab *t, const char *s, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->mask;
    for (;;) {
        int32_t id = t->slot[i];
        if (id < 0) return -1;
        const piece *p = &tok->pieces[id];
        if (p->len == n && memcmp(p->str, s, n) == 0) return id;
        i = (i + 1) & t->mask;
    }
}

/* Returns 0 if inserted, 1 if the same string is already present. */
static int tab_insert(pi0_tokenizer *tok, hash_tab *t, int id) {
    const piece *p = &tok->pieces[id];
    uint32_t i = (uint32_t)hash_bytes(p->str, p->len) & t->mask;
    while (t->slot[i] >= 0) {
        const piece *q = &tok->pieces[t->slot[i]];
        if (q->len == p->len && memcmp(q->str, p->str, p->len) == 0) return 1;
        i = (i + 1) & t->mask;
    }
    t->slot[i] = id;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// protobuf wire format

typedef struct {
    const uint8_t *base; /* start of the file: offsets in messages are from here */
    size_t pos, end;
    const char *name;
} pb;

static pi0_status pb_varint(pb *r, uint64_t *v, const char *what) {
    uint64_t x = 0;
    size_t start = r->pos;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->pos >= r->end)
            return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: %s: varint runs past the end of its message (byte %zu)",
                           r->name, start, what, r->end);
        uint8_t b = r->base[r->pos++];
        if (shift == 63 && b > 1)
            return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: %s: varint longer than 64 bits", r->name, start, what);
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return PI0_OK;
        }
    }
    return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: %s: varint longer than 10 bytes", r->name, start, what);
}

/* Read one field header; *done = 1 at the end of the message. */
static pi0_status pb_tag(pb *r, int *field, int *wire, int *done, const char *msg) {
    if (r->pos == r->end) {
        *done = 1;
        return PI0_OK;
    }
    *done = 0;
    size_t at = r->pos;
    uint64_t tag;
    pi0_status s = pb_varint(r, &tag, msg);
    if (s) return s;
    *field = (int)(tag >> 3);
    *wire = (int)(tag & 7);
    if ((tag >> 3) == 0 || (tag >> 3) > 536870911u)
        return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: %s: invalid field number %llu", r->name, at, msg,
                       (unsigned long long)(tag >> 3));
    return PI0_OK;
}

/* Length-delimited payload: [*off, *off + *len) checked against the enclosing message. */
static pi0_status pb_bytes(pb *r, size_t *off, size_t *len, const char *what) {
    size_t at = r->pos;
    uint64_t n;
    pi0_status s = pb_varint(r, &n, what);
    if (s) return s;
    if (n > r->end - r->pos)
        return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: %s: length %llu runs past the end of its message (%zu bytes left)",
                       r->name, at, what, (unsigned long long)n, r->end - r->pos);
    *off = r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return PI0_OK;
}

static pi0_status pb_skip(pb *r, int field, int wire, const char *msg) {
    size_t at = r->pos, off, len;
    uint64_t v;
    switch (wire) {
    case 0: return pb_varint(r, &v, msg);
    case 1:
    case 5: {
        size_t n = wire == 1 ? 8 : 4;
        if (r->end - r->pos < n)
            return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: %s: field %d: fixed%zu runs past the end of its message",
                           r->name, at, msg, field, n * 8);
        r->pos += n;
        return PI0_OK;
    }
    case 2: return pb_bytes(r, &off, &len, msg);
    default:
        return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: %s: field %d: unsupported wire type %d", r->name, at, msg,
                       field, wire);
    }
}

static pi0_status pb_expect(pb *r, int field, int wire, int want, const char *msg) {
    if (wire == want) return PI0_OK;
    return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: %s field %d: wire type %d, expected %d", r->name, r->pos, msg,
                   field, wire, want);
}

static pi0_status pb_int(pb *r, int field, int wire, int *out, const char *msg) {
    pi0_status s = pb_expect(r, field, wire, 0, msg);
    if (s) return s;
    uint64_t v;
    if ((s = pb_varint(r, &v, msg))) return s;
    *out = (int)(int32_t)(uint32_t)v; /* int32 / enum / bool: negative values are sign-extended */
    return PI0_OK;
}

static pi0_status pb_bool(pb *r, int field, int wire, int *out, const char *msg) {
    int v = 0;
    pi0_status s = pb_int(r, field, wire, &v, msg);
    if (!s) *out = v != 0;
    return s;
}

static pi0_status pb_string(pb *r, int field, int wire, char **out, const char *msg) {
    pi0_status s = pb_expect(r, field, wire, 2, msg);
    if (s) return s;
    size_t off, len;
    if ((s = pb_bytes(r, &off, &len, msg))) return s;
    char *c = malloc(len + 1);
    if (!c) return pi0_err(PI0_ERR_NOMEM, "%s: string of %zu bytes", r->name, len);
    memcpy(c, r->base + off, len);
    c[len] = '\0';
    free(*out);
    *out = c;
    return PI0_OK;
}

// ---------------------------------------------------------------------------------------------
// ModelProto

static pi0_status parse_piece(pi0_tokenizer *t, pb *r, piece *p, int id) {
    p->str = NULL;
    p->len = 0;
    p->score = 0.0f;
    p->type = PI0_PIECE_NORMAL;
    size_t start = r->pos;
    for (;;) {
        int field, wire, done, v;
        pi0_status s = pb_tag(r, &field, &wire, &done, "SentencePiece");
        if (s) return s;
        if (done) break;
        size_t off, len;
        if (field == 1) {
            if ((s = pb_expect(r, field, wire, 2, "SentencePiece")) || (s = pb_bytes(r, &off, &len, "piece")))
                return s;
            if (len > 0xffffffu)
                return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: piece %d: %zu bytes long", t->name, off, id, len);
            p->str = (const char *)r->base + off;
            p->len = (uint32_t)len;
        } else if (field == 2) {
            if ((s = pb_expect(r, field, wire, 5, "SentencePiece")))
                return s;
            if (r->end - r->pos < 4)
                return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: piece %d: score runs past the end of its message",
                               t->name, r->pos, id);
            const uint8_t *b = r->base + r->pos;
            uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            memcpy(&p->score, &u, 4);
            r->pos += 4;
        } else if (field == 3) {
            size_t at = r->pos;
            if ((s = pb_int(r, field, wire, &v, "SentencePiece"))) return s;
            if (v < PI0_PIECE_NORMAL || v > PI0_PIECE_BYTE)
                return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: piece %d: type %d, expected 1..6", t->name, at, id, v);
            p->type = (uint8_t)v;
        } else if ((s = pb_skip(r, field, wire, "SentencePiece"))) {
            return s;
        }
    }
    if (p->len == 0)
        return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: piece %d: empty or missing piece string", t->name, start, id);
    return PI0_OK;
}

static pi0_status parse_trainer(pi0_tokenizer *t, pb *r) {
    for (;;) {
        int field, wire, done;
        pi0_status s = pb_tag(r, &field, &wire, &done, "TrainerSpec");
        if (s) return s;
        if (done) return PI0_OK;
        switch (field) {
        case 3: s = pb_int(r, field, wire, &t->model_type, "TrainerSpec"); break;
        case 24: s = pb_bool(r, field, wire, &t->treat_ws_suffix, "TrainerSpec"); break;
        case 35: s = pb_bool(r, field, wire, &t->byte_fallback, "TrainerSpec"); break;
        case 45: s = pb_string(r, field, wire, &t->unk_piece, "TrainerSpec"); break;
        case 46: s = pb_string(r, field, wire, &t->bos_piece, "TrainerSpec"); break;
        case 47: s = pb_string(r, field, wire, &t->eos_piece, "TrainerSpec"); break;
        case 48: s = pb_string(r, field, wire, &t->pad_piece, "TrainerSpec"); break;
        default: s = pb_skip(r, field, wire, "TrainerSpec"); break;
        }
        if (s) return s;
    }
}

static uint32_t le32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* precompiled_charsmap = u32 LE trie size, darts-clone double array (u32 units), replacement
 * strings (each NUL-terminated). */
static pi0_status parse_charsmap(pi0_tokenizer *t, size_t off, size_t len) {
    free(t->trie);
    t->trie = NULL;
    t->n_trie = 0;
    if (len == 0) return PI0_OK;
    if (len <= 4)
        return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: precompiled_charsmap of %zu bytes, expected > 4", t->name, off,
                       len);
    uint32_t trie_size = le32(t->file + off);
    if (trie_size > len - 4 || trie_size % 4 != 0 || trie_size == 0)
        return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: precompiled_charsmap: trie size %u, expected a multiple of 4 "
                       "in 4..%zu", t->name, off, trie_size, len - 4);
    t->n_trie = trie_size / 4;
    t->trie = malloc(trie_size);
    if (!t->trie) return pi0_err(PI0_ERR_NOMEM, "%s: charsmap trie of %u bytes", t->name, trie_size);
    for (size_t i = 0; i < t->n_trie; i++) t->trie[i] = le32(t->file + off + 4 + 4 * i);
    t->charsmap_norm = (const char *)t->file + off + 4 + trie_size;
    t->charsmap_norm_size = len - 4 - trie_size;
    if (t->charsmap_norm_size > 0 && t->charsmap_norm[t->charsmap_norm_size - 1] != '\0')
        return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: precompiled_charsmap: replacement strings do not end with NUL",
                       t->name, off + len - 1);
    return PI0_OK;
}

static pi0_status parse_normalizer(pi0_tokenizer *t, pb *r) {
    for (;;) {
        int field, wire, done;
        size_t off, len;
        pi0_status s = pb_tag(r, &field, &wire, &done, "NormalizerSpec");
        if (s) return s;
        if (done) return PI0_OK;
        switch (field) {
        case 1: s = pb_string(r, field, wire, &t->norm_name, "NormalizerSpec"); break;
        case 2:
            if (!(s = pb_expect(r, field, wire, 2, "NormalizerSpec")) &&
                !(s = pb_bytes(r, &off, &len, "precompiled_charsmap")))
                s = parse_charsmap(t, off, len);
            break;
        case 3: s = pb_bool(r, field, wire, &t->add_dummy_prefix, "NormalizerSpec"); break;
        case 4: s = pb_bool(r, field, wire, &t->remove_extra_ws, "NormalizerSpec"); break;
        case 5: s = pb_bool(r, field, wire, &t->escape_ws, "NormalizerSpec"); break;
        default: s = pb_skip(r, field, wire, "NormalizerSpec"); break;
        }
        if (s) return s;
    }
}

/* Number of top-level `pieces` fields, so the piece array is allocated once. Stops quietly at the
 * first malformed field: parse_model reports it. */
static int count_pieces(const pi0_tokenizer *t) {
    pb r = {t->file, 0, t->file_size, t->name};
    int n = 0;
    for (;;) {
        int field, wire, done;
        if (pb_tag(&r, &field, &wire, &done, "ModelProto") || done) break;
        if (pb_skip(&r, field, wire, "ModelProto")) break;
        n += field == 1 && wire == 2 && n < INT32_MAX / 4;
    }
    pi0_err_clear();
    return n;
}

static pi0_status parse_model(pi0_tokenizer *t) {
    pb r = {t->file, 0, t->file_size, t->name};
    int cap = count_pieces(t);
    if (cap > 0 && !(t->pieces = malloc(sizeof(piece) * (size_t)cap)))
        return pi0_err(PI0_ERR_NOMEM, "%s: %d pieces", t->name, cap);
    for (;;) {
        int field, wire, done;
        size_t off, len;
        pi0_status s = pb_tag(&r, &field, &wire, &done, "ModelProto");
        if (s) return s;
        if (done) break;
        if (field >= 1 && field <= 3) {
            if ((s = pb_expect(&r, field, wire, 2, "ModelProto"))) return s;
            if ((s = pb_bytes(&r, &off, &len, field == 1 ? "pieces" : field == 2 ? "trainer_spec" : "normalizer_spec")))
                return s;
            pb sub = {t->file, off, off + len, t->name};
            if (field == 1) {
                if (t->n_pieces == cap) {
                    int ncap = cap ? cap * 2 : 1024;
                    piece *np = realloc(t->pieces, sizeof(piece) * (size_t)ncap);
                    if (!np) return pi0_err(PI0_ERR_NOMEM, "%s: %d pieces", t->name, ncap);
                    t->pieces = np;
                    cap = ncap;
                }
                if (t->n_pieces == INT32_MAX / 4)
                    return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: too many pieces", t->name, off);
                s = parse_piece(t, &sub, &t->pieces[t->n_pieces], t->n_pieces);
                t->n_pieces++;
            } else if (field == 2) {
                s = parse_trainer(t, &sub);
            } else {
                s = parse_normalizer(t, &sub);
            }
            if (s) return s;
        } else if ((s = pb_skip(&r, field, wire, "ModelProto"))) {
            return s;
        }
    }
    return PI0_OK;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Build the lookup tables and check what sentencepiece's InitializePieces checks. */
static pi0_status index_pieces(pi0_tokenizer *t) {
    pi0_status s;
    if (t->n_pieces == 0) return pi0_err(PI0_ERR_FORMAT, "%s: no pieces (not a SentencePiece model?)", t->name);
    if (t->model_type != 2)
        return pi0_err(PI0_ERR_UNSUPPORTED, "%s: trainer_spec.model_type %d, only BPE (2) is supported", t->name,
                       t->model_type);
    int n_normal = 0;
    for (int i = 0; i < t->n_pieces; i++) {
        int ty = t->pieces[i].type;
        n_normal += ty == PI0_PIECE_NORMAL || ty == PI0_PIECE_USER_DEFINED || ty == PI0_PIECE_UNUSED;
    }
    if ((s = tab_init(&t->normal, n_normal)) || (s = tab_init(&t->reserved, t->n_pieces - n_normal))) return s;
    t->unk_id = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    int n_lens = 0;
    uint32_t *lens = NULL;
    for (int i = 0; i < t->n_pieces; i++) {
        piece *p = &t->pieces[i];
        size_t off = (size_t)((const uint8_t *)p->str - t->file);
        int normal = p->type == PI0_PIECE_NORMAL || p->type == PI0_PIECE_USER_DEFINED || p->type == PI0_PIECE_UNUSED;
        if (tab_insert(t, normal ? &t->normal : &t->reserved, i))
            return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: piece %d '%.*s' is already defined", t->name, off, i,
                           (int)p->len, p->str);
        if (p->type == PI0_PIECE_UNUSED) t->has_unused = 1;
        if (p->type == PI0_PIECE_UNKNOWN) {
            if (t->unk_id >= 0)
                return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: piece %d: a second UNKNOWN piece (first is %d)", t->name,
                               off, i, t->unk_id);
            t->unk_id = i;
        }
        if (p->type == PI0_PIECE_BYTE) {
            if (!t->byte_fallback)
                return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: byte piece '%.*s' but trainer_spec.byte_fallback is false",
                               t->name, off, (int)p->len, p->str);
            int hi = p->len == 6 ? hexval(p->str[3]) : -1, lo = p->len == 6 ? hexval(p->str[4]) : -1;
            if (hi < 0 || lo < 0 || memcmp(p->str, "<0x", 3) != 0 || p->str[5] != '>')
                return pi0_err(PI0_ERR_FORMAT, "%s: byte %zu: byte piece '%.*s' is not <0xHH>", t->name, off,
                               (int)p->len, p->str);
            t->byte_id[hi * 16 + lo] = i;
        }
        if (p->type == PI0_PIECE_USER_DEFINED) {
            t->user_first[(uint8_t)p->str[0]] = 1;
            int known = 0;
            for (int k = 0; k < n_lens; k++) known |= lens[k] == p->len;
            if (!known) {
                if (n_lens % 64 == 0) {
                    uint32_t *nl = realloc(lens, sizeof(uint32_t) * (size_t)(n_lens + 64));
                    if (!nl) return pi0_err(PI0_ERR_NOMEM, "%s: user-defined piece lengths", t->name);
                    t->user_lens = lens = nl; /* owned by t from here: freed by pi0_tok_free */
                }
                lens[n_lens++] = p->len;
            }
        }
    }
    /* longest first, for the longest-match rule */
    for (int a = 1; a < n_lens; a++)
        for (int b = a; b > 0 && lens[b] > lens[b - 1]; b--) {
            uint32_t x = lens[b];
            lens[b] = lens[b - 1];
            lens[b - 1] = x;
        }
    t->user_lens = lens;
    t->n_user_lens = n_lens;
    if (t->unk_id < 0) return pi0_err(PI0_ERR_FORMAT, "%s: no UNKNOWN piece (<unk>) among %d pieces", t->name, t->n_pieces);
    if (t->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] < 0)
                return pi0_err(PI0_ERR_FORMAT, "%s: byte_fallback is true but byte piece <0x%02X> is missing", t->name, b);
    return PI0_OK;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

/* Takes ownership of `file` (freed on error too). */
static pi0_status load_owned(uint8_t *file, size_t nbytes, const char *name, pi0_tokenizer **out) {
    pi0_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(file);
        return pi0_err(PI0_ERR_NOMEM, "%s: tokenizer", name);
    }
    pi0_status s = PI0_ERR_NOMEM;
    t->name = dup_str(name);
    t->file = file;
    t->bos_piece = dup_str("<s>");
    t->eos_piece = dup_str("</s>");
    t->pad_piece = dup_str("<pad>");
    t->unk_piece = dup_str("<unk>");
    t->norm_name = dup_str("");
    if (!t->name || !t->file || !t->bos_piece || !t->eos_piece || !t->pad_piece || !t->unk_piece || !t->norm_name) {
        s = pi0_err(PI0_ERR_NOMEM, "%s: tokenizer of %zu bytes", name, nbytes);
        goto fail;
    }
    t->file_size = nbytes;
    t->model_type = 1; /* proto defaults */
    t->add_dummy_prefix = t->remove_extra_ws = t->escape_ws = 1;
    if ((s = parse_model(t)) || (s = index_pieces(t))) goto fail;
    *out = t;
    return PI0_OK;
fail:
    pi0_tok_free(t);
    return s;
}

pi0_status pi0_tok_load_mem(const void *data, size_t nbytes, const char *name, pi0_tokenizer **out) {
    if (!out) return pi0_err(PI0_ERR_ARG, "pi0_tok_load_mem: out is NULL");
    *out = NULL;
    if (!data && nbytes) return pi0_err(PI0_ERR_ARG, "pi0_tok_load_mem: data is NULL");
    uint8_t *copy = malloc(nbytes ? nbytes : 1);
    if (!copy) return pi0_err(PI0_ERR_NOMEM, "%s: %zu bytes", name ? name : "(memory)", nbytes);
    if (nbytes) memcpy(copy, data, nbytes);
    return load_owned(copy, nbytes, name ? name : "(memory)", out);
}

pi0_status pi0_tok_load(const char *path, pi0_tokenizer **out) {
    if (!out) return pi0_err(PI0_ERR_ARG, "pi0_tok_load: out is NULL");
    *out = NULL;
    if (!path) return pi0_err(PI0_ERR_ARG, "pi0_tok_load: path is NULL");
    /* pi0_file_read: a regular file only (a FIFO is refused, never waited on), at most 1 GiB */
    char *buf;
    size_t size;
    pi0_status s = pi0_file_read(path, "tokenizer model", (size_t)1 << 30, &buf, &size);
    if (s) return s;
    return load_owned((uint8_t *)buf, size, path, out);
}

void pi0_tok_free(pi0_tokenizer *t) {
    if (!t) return;
    free(t->name);
    free(t->file);
    free(t->pieces);
    free(t->normal.slot);
    free(t->reserved.slot);
    free(t->user_lens);
    free(t->bos_piece);
    free(t->eos_piece);
    free(t->pad_piece);
    free(t->unk_piece);
    free(t->norm_name);
    free(t->trie);
    free(t);
}

// ---------------------------------------------------------------------------------------------
// lookups

int pi0_tok_n_pieces(const pi0_tokenizer *t) { return t ? t->n_pieces : 0; }

/* sentencepiece's PieceToId without the unk default: reserved first, then normal. */
static int lookup(const pi0_tokenizer *t, const char *s, size_t n) {
    int id = tab_find(t, &t->reserved, s, n);
    return id >= 0 ? id : tab_find(t, &t->normal, s, n);
}

int pi0_tok_piece_id(const pi0_tokenizer *t, const char *s, size_t len) {
    if (!t || (!s && len)) return -1;
    return lookup(t, s, len);
}

const char *pi0_tok_piece(const pi0_tokenizer *t, int id, size_t *len) {
    if (!t || id < 0 || id >= t->n_pieces) return NULL;
    if (len) *len = t->pieces[id].len;
    return t->pieces[id].str;
}

float pi0_tok_score(const pi0_tokenizer *t, int id) {
    return (t && id >= 0 && id < t->n_pieces) ? t->pieces[id].score : 0.0f;
}

pi0_piece_type pi0_tok_type(const pi0_tokenizer *t, int id) {
    return (t && id >= 0 && id < t->n_pieces) ? (pi0_piece_type)t->pieces[id].type : (pi0_piece_type)0;
}

static int special(const pi0_tokenizer *t, const char *s, int type) {
    if (!t) return -1;
    int id = lookup(t, s, strlen(s));
    if (id < 0) id = t->unk_id;
    return t->pieces[id].type == type ? id : -1;
}

int pi0_tok_bos_id(const pi0_tokenizer *t) { return special(t, t ? t->bos_piece : "", PI0_PIECE_CONTROL); }
int pi0_tok_eos_id(const pi0_tokenizer *t) { return special(t, t ? t->eos_piece : "", PI0_PIECE_CONTROL); }
int pi0_tok_pad_id(const pi0_tokenizer *t) { return special(t, t ? t->pad_piece : "", PI0_PIECE_CONTROL); }
int pi0_tok_unk_id(const pi0_tokenizer *t) { return t ? t->unk_id : -1; }

pi0_tok_info pi0_tok_get_info(const pi0_tokenizer *t) {
    pi0_tok_info i = {0};
    if (!t) return i;
    i.add_dummy_prefix = t->add_dummy_prefix;
    i.remove_extra_whitespaces = t->remove_extra_ws;
    i.escape_whitespaces = t->escape_ws;
    i.treat_whitespace_as_suffix = t->treat_ws_suffix;
    i.byte_fallback = t->byte_fallback;
    i.has_charsmap = t->trie != NULL;
    i.norm_name = t->norm_name;
    return i;
}

// ---------------------------------------------------------------------------------------------
// normalizer

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static int buf_put(buf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->n + n) ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np) return -1;
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

/* Length of the longest USER_DEFINED piece starting at s[0..n), or 0. */
static size_t user_match(const pi0_tokenizer *t, const char *s, size_t n) {
    if (!t->n_user_lens || !t->user_first[(uint8_t)s[0]]) return 0;
    for (int k = 0; k < t->n_user_lens; k++) {
        uint32_t l = t->user_lens[k];
        if (l > n) continue;
        int id = tab_find(t, &t->normal, s, l);
        if (id >= 0 && t->pieces[id].type == PI0_PIECE_USER_DEFINED) return l;
    }
    return 0;
}

/* sentencepiece's DecodeUTF8 validity: length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    uint32_t cp;
    if (u[0] < 0x80) return 1;
    if (n >= 2 && (u[0] & 0xE0) == 0xC0 && (u[1] & 0xC0) == 0x80) {
        cp = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
        return cp >= 0x80 ? 2 : 0;
    }
    if (n >= 3 && (u[0] & 0xF0) == 0xE0 && (u[1] & 0xC0) == 0x80 && (u[2] & 0xC0) == 0x80) {
        cp = (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
        return (cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000)) ? 3 : 0;
    }
    if (n >= 4 && (u[0] & 0xF8) == 0xF0 && (u[1] & 0xC0) == 0x80 && (u[2] & 0xC0) == 0x80 &&
        (u[3] & 0xC0) == 0x80) {
        cp = (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 | (uint32_t)(u[2] & 0x3F) << 6 |
             (u[3] & 0x3F);
        return (cp >= 0x10000 && cp <= 0x10FFFF) ? 4 : 0;
    }
    return 0;
}

/* Longest charsmap rule matching a prefix of s (darts-clone commonPrefixSearch). Returns its
 * length (0 = none) and the replacement in *rep. -1 when the trie indexes outside itself. */
static long charsmap_match(const pi0_tokenizer *t, const char *s, size_t n, const char **rep) {
    const uint32_t *a = t->trie;
    size_t id = 0, best = 0;
    uint32_t unit = a[0];
#define DA_OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
    id ^= DA_OFFSET(unit);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        id ^= c;
        if (id >= t->n_trie) return -1;
        unit = a[id];
        if ((unit & ((1u << 31) | 0xFF)) != c) break; /* label mismatch */
        id ^= DA_OFFSET(unit);
        if (id >= t->n_trie) return -1;
        if ((unit >> 8) & 1) { /* has leaf: value in a[id] */
            uint32_t value = a[id] & 0x7fffffffu;
            if (value >= t->charsmap_norm_size) return -1;
            best = i + 1;
            *rep = t->charsmap_norm + value;
        }
    }
#undef DA_OFFSET
    return (long)best;
}

/* Normalizer::Normalize. Appends the normalized text of in[0..n) to out. */
static pi0_status normalize(const pi0_tokenizer *t, const char *in, size_t n, buf *out) {
    static const char ws[] = "\xe2\x96\x81"; /* U+2581 */
    static const char fffd[] = "\xef\xbf\xbd";
    const char *space = t->escape_ws ? ws : " ";
    size_t space_n = t->escape_ws ? 3 : 1;
    size_t pos = 0;
    int first = 1, is_prev_space = t->remove_extra_ws;
    while (pos < n) {
        /* NormalizePrefix: user-defined pass-through, charsmap rule, or one (possibly invalid) char */
        const char *sp;
        size_t sp_n, used = user_match(t, in + pos, n - pos);
        if (used) {
            sp = in + pos;
            sp_n = used;
        } else {
            long m = 0;
            const char *rep = NULL;
            if (t->trie && (m = charsmap_match(t, in + pos, n - pos, &rep)) < 0)
                return pi0_err(PI0_ERR_FORMAT, "%s: precompiled_charsmap: trie entry out of range while "
                               "normalizing input byte %zu", t->name, pos);
            if (m > 0) {
                sp = rep;
                sp_n = strlen(rep);
                used = (size_t)m;
            } else if ((used = utf8_len(in + pos, n - pos)) > 0) {
                sp = in + pos;
                sp_n = used;
            } else {
                sp = fffd;
                sp_n = 3;
                used = 1;
            }
        }
        pos += used;
        if (first && t->remove_extra_ws && sp_n == 1 && sp[0] == ' ') continue; /* heading spaces */
        if (first) {
            first = 0;
            if (!t->treat_ws_suffix && t->add_dummy_prefix && buf_put(out, space, space_n)) goto nomem;
        }
        if (is_prev_space)
            while (sp_n > 0 && sp[0] == ' ') sp++, sp_n--;
        if (sp_n > 0) {
            for (size_t i = 0; i < sp_n; i++) {
                int r = (t->escape_ws && sp[i] == ' ') ? buf_put(out, ws, 3) : buf_put(out, sp + i, 1);
                if (r) goto nomem;
            }
            is_prev_space = sp[sp_n - 1] == ' ';
        }
        if (!t->remove_extra_ws) is_prev_space = 0;
    }
    if (first) return PI0_OK; /* empty or all heading spaces: nothing at all */
    if (t->remove_extra_ws)
        while (out->n >= space_n && memcmp(out->p + out->n - space_n, space, space_n) == 0) out->n -= space_n;
    if (t->treat_ws_suffix && t->add_dummy_prefix && buf_put(out, space, space_n)) goto nomem;
    return PI0_OK;
nomem:
    return pi0_err(PI0_ERR_NOMEM, "%s: normalizing %zu bytes", t->name, n);
}

// ---------------------------------------------------------------------------------------------
// BPE (bpe_model.cc Model::Encode)

typedef struct {
    int prev, next; /* -1 at the ends */
    uint32_t start, len; /* into the normalized text; len 0 = merged away */
    int freeze;
} symbol;

typedef struct {
    float score;
    int left, right;
    uint32_t size; /* bytes of the merged piece, to detect stale entries */
} pair;

/* Heap order: higher score first, then smaller left index (the leftmost pair). */
static int pair_before(const pair *a, const pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(pair *h, int *n, pair p) {
    int i = (*n)++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!pair_before(&p, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = p;
}

static pair heap_pop(pair *h, int *n) {
    pair top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && pair_before(&h[c + 1], &h[c])) c++;
        if (!pair_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

/* Merges that produced UNUSED pieces, to split them back at the end (sentencepiece `rev_merge`,
 * keyed by piece: the last pair recorded for a piece wins). */
typedef struct {
    int id;
    uint32_t lstart, llen, rstart, rlen;
} rev_entry;

typedef struct {
    const pi0_tokenizer *t;
    const char *text;
    symbol *sym;
    pair *heap;
    int n_heap;
    rev_entry *rev;
    uint32_t rev_mask;
    int32_t *ids;
    int cap, n;
    int prev_unk;
} bpe;

static void maybe_add_pair(bpe *b, int left, int right) {
    if (left < 0 || right < 0 || b->sym[left].freeze || b->sym[right].freeze) return;
    uint32_t start = b->sym[left].start, size = b->sym[left].len + b->sym[right].len;
    int id = tab_find(b->t, &b->t->normal, b->text + start, size);
    if (id < 0) return;
    pair p = {b->t->pieces[id].score, left, right, size};
    heap_push(b->heap, &b->n_heap, p);
    if (b->rev && b->t->pieces[id].type == PI0_PIECE_UNUSED) {
        uint32_t i = ((uint32_t)id * 2654435761u) & b->rev_mask;
        while (b->rev[i].id >= 0 && b->rev[i].id != id) i = (i + 1) & b->rev_mask;
        rev_entry e = {id, start, b->sym[left].len, b->sym[right].start, b->sym[right].len};
        b->rev[i] = e;
    }
}

static void emit(bpe *b, int id) {
    if (b->n < b->cap) b->ids[b->n] = id;
    b->n++;
}

/* One final piece: re-split UNUSED pieces, then byte fallback / unk-run merging
 * (SentencePieceProcessor::Encode). */
static void output_piece(bpe *b, uint32_t start, uint32_t len) {
    const pi0_tokenizer *t = b->t;
    int id = lookup(t, b->text + start, len);
    if (id >= 0 && t->pieces[id].type == PI0_PIECE_UNUSED && b->rev) {
        uint32_t i = ((uint32_t)id * 2654435761u) & b->rev_mask;
        while (b->rev[i].id >= 0 && b->rev[i].id != id) i = (i + 1) & b->rev_mask;
        if (b->rev[i].id == id) {
            rev_entry e = b->rev[i];
            output_piece(b, e.lstart, e.llen);
            output_piece(b, e.rstart, e.rlen);
            return;
        }
    }
    if (id < 0) id = t->unk_id;
    int is_unk = t->pieces[id].type == PI0_PIECE_UNKNOWN;
    if (is_unk && t->byte_fallback) {
        for (uint32_t k = 0; k < len; k++) emit(b, t->byte_id[(uint8_t)b->text[start + k]]);
    } else if (!(is_unk && b->prev_unk)) {
        emit(b, id);
    }
    b->prev_unk = is_unk;
}

pi0_status pi0_tok_encode(const pi0_tokenizer *t, const char *text, size_t len, int32_t *ids, int cap, int *n) {
    if (!t || !n || (!text && len) || cap < 0 || (!ids && cap > 0))
        return pi0_err(PI0_ERR_ARG, "pi0_tok_encode: NULL tokenizer, text, ids or n, or cap < 0");
    *n = 0;
    if (len > (size_t)INT32_MAX / 8) return pi0_err(PI0_ERR_ARG, "pi0_tok_encode: text of %zu bytes is too long", len);
    buf norm = {0};
    pi0_status s = normalize(t, text ? text : "", len, &norm);
    bpe b = {.t = t, .text = norm.p, .ids = ids, .cap = cap};
    if (s || norm.n == 0) goto done;

    /* initial symbols: longest user-defined piece (frozen), else one UTF-8 character */
    size_t nn = norm.n;
    b.sym = malloc(sizeof(symbol) * nn);
    b.heap = malloc(sizeof(pair) * (3 * nn + 1));
    if (t->has_unused) {
        uint32_t rc = 16;
        while (rc < 4 * nn) rc <<= 1;
        b.rev = malloc(sizeof(rev_entry) * rc);
        if (b.rev) {
            memset(b.rev, 0xff, sizeof(rev_entry) * rc);
            b.rev_mask = rc - 1;
        }
    }
    if (!b.sym || !b.heap || (t->has_unused && !b.rev)) {
        s = pi0_err(PI0_ERR_NOMEM, "%s: encoding %zu normalized bytes", t->name, nn);
        goto done;
    }
    int n_sym = 0;
    for (size_t pos = 0; pos < nn;) {
        size_t l = user_match(t, norm.p + pos, nn - pos);
        int freeze = l > 0;
        if (!l) {
            /* OneCharLen on the (valid UTF-8) normalized text */
            static const uint8_t one_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
            l = one_len[(uint8_t)norm.p[pos] >> 4];
            if (l > nn - pos) l = nn - pos;
        }
        symbol sy = {n_sym - 1, pos + l < nn ? n_sym + 1 : -1, (uint32_t)pos, (uint32_t)l, freeze};
        b.sym[n_sym++] = sy;
        pos += l;
    }
    for (int i = 1; i < n_sym; i++) maybe_add_pair(&b, i - 1, i);

    while (b.n_heap > 0) {
        pair top = heap_pop(b.heap, &b.n_heap);
        symbol *l = &b.sym[top.left], *r = &b.sym[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue; /* stale */
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) b.sym[r->next].prev = top.left;
        r->len = 0;
        maybe_add_pair(&b, l->prev, top.left);
        maybe_add_pair(&b, top.left, l->next);
    }
    for (int i = 0; i != -1; i = b.sym[i].next) output_piece(&b, b.sym[i].start, b.sym[i].len);
done:
    *n = s ? 0 : b.n;
    free(b.sym);
    free(b.heap);
    free(b.rev);
    free(norm.p);
    return s;
}
