/* prompt.c - π0 / π0.5 prompt tokens: cleaning, state bins, layout, padding (see prompt.h).
 * Mirrors openpi `models/tokenizer.py` PaligemmaTokenizer.tokenize at 15a9616a. */
#include "io/prompt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static pi0_status spm_encode(void *user, const char *text, size_t len, int32_t *ids, int cap, int *n) {
    return pi0_tok_encode((const pi0_tokenizer *)user, text, len, ids, cap, n);
}

pi0_status pi0_text_encoder_spm(const pi0_tokenizer *t, pi0_text_encoder *out) {
    if (!t || !out) return pi0_err(PI0_ERR_ARG, "pi0_text_encoder_spm: NULL tokenizer or out");
    int bos = pi0_tok_bos_id(t);
    if (bos < 0) return pi0_err(PI0_ERR_FORMAT, "tokenizer: no CONTROL bos piece (trainer_spec.bos_piece)");
    out->encode = spm_encode;
    out->user = (void *)t;
    out->bos_id = bos;
    return PI0_OK;
}

// ---- cleaning ----------------------------------------------------------------------------------

/* Python's str.isspace() code points (Py_UNICODE_ISSPACE), which str.strip() removes. */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decode one UTF-8 code point at s[0..n); returns its length, or 0 if invalid. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    if (s[0] < 0x80) return *cp = s[0], 1;
    size_t len = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    uint32_t c = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = c << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[len] || c > 0x10FFFF || (c >= 0xD800 && c < 0xE000)) return 0;
    *cp = c;
    return len;
}

size_t pi0_prompt_clean(const char *text, size_t len, char *out) {
    const uint8_t *s = (const uint8_t *)(text ? text : "");
    if (!text) len = 0;
    size_t a = 0, b = len;
    uint32_t c;
    for (size_t k; a < b && (k = utf8_decode(s + a, b - a, &c)) > 0 && py_space(c);) a += k;
    while (b > a) {
        size_t st = b - 1; /* start of the last code point: back over up to 3 continuation bytes */
        while (st > a && b - st < 4 && (s[st] & 0xC0) == 0x80) st--;
        if (utf8_decode(s + st, b - st, &c) != b - st || !py_space(c)) break;
        b = st;
    }
    size_t n = 0;
    for (size_t i = a; i < b; i++) out[n++] = (s[i] == '_' || s[i] == '\n') ? ' ' : (char)s[i];
    out[n] = '\0';
    return n;
}

// ---- state -------------------------------------------------------------------------------------

int pi0_state_bin(double x) {
    /* edges e_k = -1 + k/128 are exact in double; the count of edges <= x is monotone in x, so a
     * binary search over k gives the same answer as comparing with every edge */
    int lo = 0, hi = 256; /* answer (count) in [lo, hi] */
    while (lo < hi) {
        int mid = (lo + hi) / 2; /* is edge `mid` <= x ? */
        if (-1.0 + (double)mid / 128.0 <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo - 1;
}

pi0_status pi0_prompt_pi05_text(const char *task, const double *state, int state_dim, char **out) {
    if (!out || state_dim < 0 || (state_dim > 0 && !state))
        return pi0_err(PI0_ERR_ARG, "pi0_prompt_pi05_text: NULL out or state, or state_dim %d < 0", state_dim);
    *out = NULL;
    for (int i = 0; i < state_dim; i++)
        if (isnan(state[i])) return pi0_err(PI0_ERR_ARG, "prompt: state[%d] is NaN (cannot be discretized)", i);
    size_t tl = task ? strlen(task) : 0;
    static const char head[] = "Task: ", mid[] = ", State: ", tail[] = ";\nAction: ";
    size_t cap = sizeof head + tl + sizeof mid + (size_t)state_dim * 5 + sizeof tail + 1;
    char *s = malloc(cap);
    if (!s) return pi0_err(PI0_ERR_NOMEM, "prompt: %zu bytes", cap);
    size_t n = 0;
    memcpy(s, head, sizeof head - 1);
    n += sizeof head - 1;
    n += pi0_prompt_clean(task, tl, s + n);
    memcpy(s + n, mid, sizeof mid - 1);
    n += sizeof mid - 1;
    for (int i = 0; i < state_dim; i++)
        n += (size_t)snprintf(s + n, cap - n, i ? " %d" : "%d", pi0_state_bin(state[i]));
    memcpy(s + n, tail, sizeof tail); /* with the NUL */
    *out = s;
    return PI0_OK;
}

// ---- layout ------------------------------------------------------------------------------------

/* Append encode(text) at tokens[*pos], clipped to max_len; *total counts every id. */
static pi0_status append(const pi0_text_encoder *enc, const char *text, size_t len, int32_t *tokens, int max_len,
                         int *pos, long *total) {
    int n = 0, room = max_len - *pos;
    pi0_status s = enc->encode(enc->user, text, len, tokens + *pos, room, &n);
    if (s) return s;
    if (n < 0) return pi0_err(PI0_ERR_INTERNAL, "prompt: encoder returned %d ids", n);
    *pos += n < room ? n : room;
    *total += n;
    return PI0_OK;
}

static pi0_status finish(int32_t *tokens, int32_t *masks, int max_len, int pos, long total, int *n_valid) {
    if (total > max_len)
        pi0_log(PI0_LOG_WARN, "prompt: %ld tokens, truncated to max_token_len %d (the end of the prompt is lost)",
                total, max_len);
    for (int i = 0; i < max_len; i++) {
        if (i >= pos) tokens[i] = 0;
        masks[i] = i < pos;
    }
    if (n_valid) *n_valid = pos;
    return PI0_OK;
}

static pi0_status check_args(const pi0_text_encoder *enc, int max_len, int32_t *tokens, int32_t *masks) {
    if (!enc || !enc->encode || !tokens || !masks || max_len < 1)
        return pi0_err(PI0_ERR_ARG, "prompt: NULL encoder/tokens/masks or max_len %d < 1", max_len);
    return PI0_OK;
}

pi0_status pi0_prompt_pi0(const pi0_text_encoder *enc, const char *task, int max_len, int32_t *tokens,
                          int32_t *masks, int *n_valid) {
    pi0_status s = check_args(enc, max_len, tokens, masks);
    if (s) return s;
    size_t tl = task ? strlen(task) : 0;
    char *clean = malloc(tl + 1);
    if (!clean) return pi0_err(PI0_ERR_NOMEM, "prompt: %zu bytes", tl + 1);
    size_t cl = pi0_prompt_clean(task, tl, clean);
    int pos = 1;
    long total = 1;
    tokens[0] = enc->bos_id;
    if (!(s = append(enc, clean, cl, tokens, max_len, &pos, &total)) &&
        !(s = append(enc, "\n", 1, tokens, max_len, &pos, &total)))
        s = finish(tokens, masks, max_len, pos, total, n_valid);
    free(clean);
    return s;
}

pi0_status pi0_prompt_pi05(const pi0_text_encoder *enc, const char *task, const double *state, int state_dim,
                           int max_len, int32_t *tokens, int32_t *masks, int *n_valid) {
    pi0_status s = check_args(enc, max_len, tokens, masks);
    if (s) return s;
    char *text = NULL;
    if ((s = pi0_prompt_pi05_text(task, state, state_dim, &text))) return s;
    int pos = 1;
    long total = 1;
    tokens[0] = enc->bos_id;
    if (!(s = append(enc, text, strlen(text), tokens, max_len, &pos, &total)))
        s = finish(tokens, masks, max_len, pos, total, n_valid);
    free(text);
    return s;
}
