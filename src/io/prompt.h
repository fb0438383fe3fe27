/* prompt.h - the π0 / π0.5 prompt token builder (openpi PaligemmaTokenizer.tokenize), host side.
 *
 * Contract (PI0_IO.md §1.5, PI0_MODEL.md §7.3-7.4):
 *   clean(task)  = Python str.strip() (ASCII and Unicode whitespace), then '_' -> ' ', '\n' -> ' '
 *   π0           : [bos] + encode(clean) + encode("\n")                       (two encode calls)
 *   π0.5         : [bos] + encode("Task: " + clean + ", State: " + S + ";\nAction: ")  (one call)
 *                  S = discretized state values ("%d", single spaces)
 *   then right-pad with id 0 to max_len (mask 0), or keep the first max_len ids (all mask 1; a
 *   warning is logged through pi0_log). The encoder is pluggable so tests can use toy tokenizers.
 */
#ifndef PI0_PROMPT_H
#define PI0_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "io/tokenizer.h"
#include "pi0.h"

/* Encoder with pi0_tok_encode's contract: write the first min(total, cap) ids, set *n = total. */
typedef pi0_status (*pi0_encode_fn)(void *user, const char *text, size_t len, int32_t *ids, int cap, int *n);

typedef struct {
    pi0_encode_fn encode;
    void *user;
    int32_t bos_id; /* prepended to every prompt */
} pi0_text_encoder;

/* The SentencePiece encoder over a loaded tokenizer (bos = pi0_tok_bos_id). t must outlive the
 * returned struct. Fails with PI0_ERR_FORMAT when the model has no CONTROL bos piece. */
pi0_status pi0_text_encoder_spm(const pi0_tokenizer *t, pi0_text_encoder *out);

/* openpi's cleaning of `len` bytes of UTF-8 into out (room for len + 1 bytes; NUL-terminated).
 * Returns the cleaned length. Invalid UTF-8 bytes are kept and count as non-whitespace. */
size_t pi0_prompt_clean(const char *text, size_t len, char *out);

/* Bin of one normalized state value: (number of k in 0..255 with -1 + k/128 <= x) - 1, by exact
 * comparisons with the bin edges, so x < -1 -> -1 and x >= 0.9921875 -> 255. NaN is not accepted
 * (pi0_prompt_pi05 rejects it before calling this); here it returns -1. */
int pi0_state_bin(double x);

/* The π0.5 prompt text "Task: <clean>, State: <bins>;\nAction: " into a new malloc'd string
 * (caller frees). Fails with PI0_ERR_ARG on a NaN state value. */
pi0_status pi0_prompt_pi05_text(const char *task, const double *state, int state_dim, char **out);

/* Build the prompt. tokens/masks: [max_len] outputs (masks 1 = real token). *n_valid (may be NULL)
 * = number of mask-1 entries. task is a NUL-terminated UTF-8 string (NULL = ""). */
pi0_status pi0_prompt_pi0(const pi0_text_encoder *enc, const char *task, int max_len, int32_t *tokens,
                          int32_t *masks, int *n_valid);
/* state: [state_dim] normalized, unpadded robot state (float64 as openpi computes it). */
pi0_status pi0_prompt_pi05(const pi0_text_encoder *enc, const char *task, const double *state, int state_dim,
                           int max_len, int32_t *tokens, int32_t *masks, int *n_valid);

#endif
