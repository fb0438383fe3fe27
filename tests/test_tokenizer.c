/* test_tokenizer.c - SentencePiece BPE encoder vs the sentencepiece library, and bad model files.
 *
 * Expected ids come from the sentencepiece library 0.1.97 (`spm_encode --output_format=id` and its
 * Python binding), produced by tests/gen_tokenizer_data.sh on models trained by spm_train; every
 * line of every model must match exactly. Run from the repository root (tests/run.sh does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "harness.h"
#include "io/tokenizer.h"

#define DATA "tests/data/tokenizer/"

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    if (b) b[sz] = '\0';
    fclose(f);
    *n = (size_t)sz;
    return b;
}

/* Split a buffer into lines (in place, '\n' -> '\0'); returns the count. */
static int split_lines(char *b, size_t n, char **lines, size_t *lens, int max) {
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i < n && k < max; i++)
        if (b[i] == '\n') {
            b[i] = '\0';
            lines[k] = b + start;
            lens[k++] = i - start;
            start = i + 1;
        }
    return k;
}

static int parse_ids(const char *s, int32_t *ids, int cap) {
    int n = 0;
    char *end;
    for (;;) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        s = end;
    }
    return n;
}

static int hex_decode(const char *h, size_t hn, char *out) {
    int n = 0;
    for (size_t i = 0; i + 1 < hn; i += 2) {
        unsigned v;
        char tmp[3] = {h[i], h[i + 1], 0};
        sscanf(tmp, "%x", &v);
        out[n++] = (char)v;
    }
    return n;
}

#define MAXL 256
#define MAXIDS 16384

/* Encode every string of `strings` (raw lines or hex lines) and compare with the expected ids. */
static void check_corpus(const char *model, const char *strings_file, int hex, const char *ids_file) {
    char path[256];
    snprintf(path, sizeof path, DATA "%s.model", model);
    pi0_tokenizer *t = NULL;
    pi0_status s = pi0_tok_load(path, &t);
    CHECK(s == PI0_OK, "%s: load (%s)", path, pi0_last_error());
    if (s) return;
    size_t ns, ni;
    char *sb = read_file(strings_file, &ns), *ib = read_file(ids_file, &ni);
    if (!sb || !ib) {
        CHECK(0, "%s: read %s / %s", model, strings_file, ids_file);
        free(sb);
        free(ib);
        pi0_tok_free(t);
        return;
    }
    static char *sl[MAXL], *il[MAXL];
    static size_t sn[MAXL], in[MAXL];
    int nsl = split_lines(sb, ns, sl, sn, MAXL), nil = split_lines(ib, ni, il, in, MAXL);
    CHECK(nsl == nil && nsl > 0, "%s: %s has %d lines, %s has %d", model, strings_file, nsl, ids_file, nil);
    static int32_t want[MAXIDS], got[MAXIDS];
    static char text[MAXIDS];
    int n_ok = 0, n_bad = 0;
    for (int i = 0; i < nsl && i < nil; i++) {
        const char *str = sl[i];
        size_t len = sn[i];
        if (hex) {
            len = (size_t)hex_decode(sl[i], sn[i], text);
            str = text;
        }
        int nw = parse_ids(il[i], want, MAXIDS), ng = -1;
        s = pi0_tok_encode(t, str, len, got, MAXIDS, &ng);
        int same = s == PI0_OK && ng == nw && memcmp(got, want, sizeof(int32_t) * (size_t)(nw < MAXIDS ? nw : MAXIDS)) == 0;
        if (same) {
            n_ok++;
            continue;
        }
        n_bad++;
        if (n_bad <= 5) {
            int k = 0;
            while (k < ng && k < nw && got[k] == want[k]) k++;
            printf("     %s line %d (%zu bytes, '%.40s'): %d ids, want %d; first difference at %d: got %d want %d (%s)\n",
                   model, i + 1, len, hex ? sl[i] : str, ng, nw, k, k < ng ? got[k] : -1, k < nw ? want[k] : -1,
                   s ? pi0_last_error() : "ok");
        }
    }
    CHECK(n_bad == 0, "%s: %s: %d/%d strings give the library's ids", model, strings_file, n_ok, n_ok + n_bad);
    /* capacity contract: first `cap` ids written, total returned */
    if (nsl > 5) {
        int n_full = 0, n_cut = 0;
        pi0_tok_encode(t, sl[5], sn[5], got, MAXIDS, &n_full);
        int32_t small[2] = {-7, -7};
        s = pi0_tok_encode(t, sl[5], sn[5], small, 1, &n_cut);
        CHECK(s == PI0_OK && n_cut == n_full && small[0] == got[0] && small[1] == -7,
              "%s: cap=1 writes 1 id and reports the total %d (got %d)", model, n_full, n_cut);
    }
    free(sb);
    free(ib);
    pi0_tok_free(t);
}

static void check_flags(void) {
    const struct { const char *m; int dummy, rmws, esc, suffix, bf, charsmap, bos, eos, pad, unk; } want[] = {
        {"gemma_like", 0, 0, 1, 0, 1, 0, 2, 1, 0, 3},
        {"defaults", 1, 1, 1, 0, 0, 1, 1, 2, -1, 0},
        {"suffix", 1, 1, 1, 1, 1, 0, 1, 2, -1, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, DATA "%s.model", want[i].m);
        pi0_tokenizer *t = NULL;
        if (pi0_tok_load(path, &t)) {
            CHECK(0, "%s: load: %s", path, pi0_last_error());
            continue;
        }
        pi0_tok_info f = pi0_tok_get_info(t);
        CHECK(f.add_dummy_prefix == want[i].dummy && f.remove_extra_whitespaces == want[i].rmws &&
                  f.escape_whitespaces == want[i].esc && f.treat_whitespace_as_suffix == want[i].suffix &&
                  f.byte_fallback == want[i].bf && f.has_charsmap == want[i].charsmap,
              "%s: flags dummy=%d rmws=%d esc=%d suffix=%d byte_fallback=%d charsmap=%d (norm '%s')", want[i].m,
              f.add_dummy_prefix, f.remove_extra_whitespaces, f.escape_whitespaces, f.treat_whitespace_as_suffix,
              f.byte_fallback, f.has_charsmap, f.norm_name);
        CHECK(pi0_tok_bos_id(t) == want[i].bos && pi0_tok_eos_id(t) == want[i].eos &&
                  pi0_tok_pad_id(t) == want[i].pad && pi0_tok_unk_id(t) == want[i].unk,
              "%s: bos %d eos %d pad %d unk %d", want[i].m, pi0_tok_bos_id(t), pi0_tok_eos_id(t), pi0_tok_pad_id(t),
              pi0_tok_unk_id(t));
        pi0_tok_free(t);
    }
}

// ---- bad files ---------------------------------------------------------------------------------

typedef struct {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void put_varint(wbuf *b, uint64_t v) {
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        put(b, &c, 1);
    } while (v);
}
static void put_bytes_field(wbuf *b, int field, const void *s, size_t n) {
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, n);
    put(b, s, n);
}
static void put_piece(wbuf *b, const char *s, float score, int type) {
    wbuf m = {0};
    put_bytes_field(&m, 1, s, strlen(s));
    put_varint(&m, 2 << 3 | 5);
    put(&m, &score, 4); /* little-endian host assumed by this test */
    if (type) {
        put_varint(&m, 3 << 3 | 0);
        put_varint(&m, (uint64_t)type);
    }
    put_bytes_field(b, 1, m.p, m.n);
    free(m.p);
}
static void put_trainer(wbuf *b, int model_type, int byte_fallback) {
    wbuf m = {0};
    put_varint(&m, 3 << 3);
    put_varint(&m, (uint64_t)model_type);
    put_varint(&m, 35 << 3);
    put_varint(&m, (uint64_t)byte_fallback);
    put_bytes_field(b, 2, m.p, m.n);
    free(m.p);
}

static void expect_bad(const char *label, const void *data, size_t n, pi0_status want, const char *needle) {
    pi0_tokenizer *t = (pi0_tokenizer *)1;
    pi0_status s = pi0_tok_load_mem(data, n, label, &t);
    const char *msg = pi0_last_error();
    CHECK(s == want && t == NULL && strstr(msg, needle) != NULL, "%s: status %s (want %s), message: %s", label,
          pi0_status_str(s), pi0_status_str(want), msg);
}

static void check_bad_files(void) {
    size_t n;
    char *good = read_file(DATA "gemma_like.model", &n);
    if (!good) {
        CHECK(0, "read gemma_like.model");
        return;
    }
    /* truncation anywhere inside must be caught with a byte offset */
    size_t cuts[] = {1, 2, 3, 7, 100, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "truncated@%zu", cuts[i]);
        expect_bad(label, good, cuts[i], PI0_ERR_FORMAT, "byte ");
    }
    expect_bad("empty", good, 0, PI0_ERR_FORMAT, "no pieces");
    /* garbage: deterministic pseudo-random bytes */
    uint8_t junk[4096];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof junk; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        junk[i] = (uint8_t)x;
    }
    expect_bad("garbage", junk, sizeof junk, PI0_ERR_FORMAT, "byte ");
    const char text[] = "this is not a protobuf file, just some text\n";
    expect_bad("text", text, sizeof text - 1, PI0_ERR_FORMAT, "byte ");

    /* hand-built models: valid skeleton, then one defect each */
    wbuf b = {0};
    put_piece(&b, "<unk>", 0, 2);
    put_piece(&b, "a", -1, 0);
    put_trainer(&b, 2, 0);
    pi0_tokenizer *t = NULL;
    pi0_status s = pi0_tok_load_mem(b.p, b.n, "minimal", &t);
    int ids[4], nid = 0;
    if (t) pi0_tok_encode(t, "aa", 2, ids, 4, &nid);
    CHECK(s == PI0_OK && nid == 3 && ids[0] == 0 && ids[1] == 1 && ids[2] == 1,
          "minimal model loads; 'aa' -> <unk>(dummy prefix) a a: %d ids (%s)", nid, pi0_last_error());
    pi0_tok_free(t);

    wbuf u = {0};
    put_piece(&u, "<unk>", 0, 2);
    put_piece(&u, "a", -1, 0);
    put_trainer(&u, 1, 0);
    expect_bad("unigram", u.p, u.n, PI0_ERR_UNSUPPORTED, "model_type 1");
    u.n = 0;
    put_piece(&u, "a", -1, 0);
    put_trainer(&u, 2, 0);
    expect_bad("no unk", u.p, u.n, PI0_ERR_FORMAT, "UNKNOWN");
    u.n = 0;
    put_piece(&u, "<unk>", 0, 2);
    put_piece(&u, "a", -1, 0);
    put_piece(&u, "a", -2, 0);
    put_trainer(&u, 2, 0);
    expect_bad("duplicate", u.p, u.n, PI0_ERR_FORMAT, "already defined");
    u.n = 0;
    put_piece(&u, "<unk>", 0, 2);
    put_piece(&u, "<0x41>", 0, 6);
    put_trainer(&u, 2, 1);
    expect_bad("byte fallback without 256 bytes", u.p, u.n, PI0_ERR_FORMAT, "<0x00>");
    u.n = 0;
    put_piece(&u, "<unk>", 0, 9);
    put_trainer(&u, 2, 0);
    expect_bad("bad type", u.p, u.n, PI0_ERR_FORMAT, "type 9");
    u.n = 0;
    put_piece(&u, "<unk>", 0, 2);
    put_varint(&u, 1 << 3 | 0); /* pieces with varint wire type */
    put_varint(&u, 5);
    expect_bad("wire type", u.p, u.n, PI0_ERR_FORMAT, "wire type 0");
    u.n = 0;
    put_piece(&u, "<unk>", 0, 2);
    put_varint(&u, 3 << 3 | 2); /* normalizer_spec claiming 1000 bytes */
    put_varint(&u, 1000);
    expect_bad("length past end", u.p, u.n, PI0_ERR_FORMAT, "length 1000");
    u.n = 0;
    put_piece(&u, "<unk>", 0, 2);
    put_trainer(&u, 2, 0);
    uint8_t cm[12] = {7, 0, 0, 0}; /* charsmap trie size 7: not a multiple of 4 */
    wbuf ns = {0};
    put_bytes_field(&ns, 2, cm, sizeof cm);
    put_bytes_field(&u, 3, ns.p, ns.n);
    expect_bad("charsmap", u.p, u.n, PI0_ERR_FORMAT, "trie size 7");
    free(ns.p);
    free(u.p);
    free(b.p);
    free(good);

    pi0_status st = pi0_tok_load("tests/data/tokenizer/does_not_exist.model", &t);
    CHECK(st == PI0_ERR_IO && t == NULL && strstr(pi0_last_error(), "does_not_exist"), "missing file: %s",
          pi0_last_error());
}

/* Corrupted copies of real models (a few random bytes changed, including inside the charsmap trie
 * of defaults.model) must load or fail cleanly, and encode or fail cleanly: run under `make san`. */
static void check_mutations(void) {
    const char *models[] = {DATA "gemma_like.model", DATA "defaults.model"};
    size_t text_n = 0;
    char *text = read_file(DATA "strings.txt", &text_n); /* every hard string at once */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    static int32_t ids[MAXIDS];
    for (int m = 0; m < 2; m++) {
        size_t n;
        char *good = read_file(models[m], &n);
        if (!good) {
            CHECK(0, "read %s", models[m]);
            continue;
        }
        char *bad = malloc(n);
        int n_ok = 0, n_err = 0, n_enc_err = 0, silent = 0;
        for (int it = 0; it < 300; it++) {
            memcpy(bad, good, n);
            for (int k = 0; k < 1 + it % 4; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                bad[x % n] = (char)(x >> 40);
            }
            pi0_tokenizer *t = NULL;
            if (pi0_tok_load_mem(bad, n, "mutant", &t) != PI0_OK) {
                n_err++;
                silent += pi0_last_error()[0] == '\0';
                continue;
            }
            n_ok++;
            int k = 0;
            if (pi0_tok_encode(t, text ? text : "", text_n, ids, MAXIDS, &k) != PI0_OK) n_enc_err++;
            pi0_tok_free(t);
        }
        CHECK(silent == 0, "%s: 300 mutants: %d load, %d rejected (all with a message), %d encode errors", models[m],
              n_ok, n_err, n_enc_err);
        free(bad);
        free(good);
    }
    free(text);
}

/* A 257,152-piece vocabulary like PaliGemma's: load time (printed, not asserted) and a sanity encode. */
static void check_big_vocab(void) {
    wbuf b = {0};
    put_piece(&b, "<pad>", 0, 3);
    put_piece(&b, "<eos>", 0, 3);
    put_piece(&b, "<bos>", 0, 3);
    put_piece(&b, "<unk>", 0, 2);
    char s[32];
    for (int i = 0; i < 256; i++) {
        snprintf(s, sizeof s, "<0x%02X>", i);
        put_piece(&b, s, 0, 6);
    }
    int n = 260;
    for (int i = 0; n < 257152; i++, n++) {
        snprintf(s, sizeof s, "\xe2\x96\x81w%d", i);
        put_piece(&b, s, -(float)i, 0);
    }
    put_trainer(&b, 2, 1);
    pi0_tokenizer *t = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pi0_status st = pi0_tok_load_mem(b.p, b.n, "big", &t);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    CHECK(st == PI0_OK && pi0_tok_n_pieces(t) == 257152, "257152-piece model (%zu bytes) loads in %.1f ms: %s", b.n,
          ms, pi0_last_error());
    if (t) {
        /* no merges exist (pieces are whole words, never pairs), so: bytes of '▁' and 'w' */
        int ids[8], k = 0;
        pi0_tok_encode(t, "w", 1, ids, 8, &k);
        CHECK(k == 4 && ids[0] == 4 + 0xE2 && ids[3] == 4 + 'w', "big vocab: 'w' -> 4 byte pieces (%d)", k);
        CHECK(pi0_tok_piece_id(t, "\xe2\x96\x81w123", 7) == 260 + 123, "big vocab: piece lookup by text");
    }
    pi0_tok_free(t);
    free(b.p);
}

int main(void) {
    const char *models[] = {"gemma_like", "gemma_unused", "defaults", "suffix"};
    for (int i = 0; i < 4; i++) {
        char ids[256], hids[256];
        snprintf(ids, sizeof ids, DATA "%s.ids", models[i]);
        snprintf(hids, sizeof hids, DATA "%s.hex.ids", models[i]);
        check_corpus(models[i], DATA "strings.txt", 0, ids);
        check_corpus(models[i], DATA "strings_hex.txt", 1, hids);
    }
    check_flags();
    check_bad_files();
    check_mutations();
    check_big_vocab();
    return harness_summary();
}
