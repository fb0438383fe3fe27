/* msgpack_numpy.h - the openpi wire format (PI0_IO.md §4.3-4.6): decode an observation request
 * into pi0_array entries, encode the response and the metadata map.
 *
 * Decoding reads untrusted bytes. It is a zero-copy cursor over the caller's buffer: every length
 * and count is checked against the bytes that remain before it is used, nothing is allocated from
 * a declared size, nesting is capped, and the output has at most PI0_MPK_MAX_ARRAYS entries.
 * Array data points into the request buffer when it is little-endian and aligned; otherwise it is
 * copied (byte-swapped) into memory owned by the result. The request buffer must outlive the
 * result. Errors are written as one line naming the byte offset and key at fault.
 *
 * Encoding uses msgpack-c's packer (trusted data, our own output). */
#ifndef PI0_SERVER_MSGPACK_NUMPY_H
#define PI0_SERVER_MSGPACK_NUMPY_H

#include <stddef.h>
#include <stdint.h>

#include "pi0_policy.h"

#define PI0_MPK_MAX_ARRAYS 64  /* arrays in one request (LIBERO sends 3, ALOHA 5) */
#define PI0_MPK_MAX_KEY 128    /* bytes in a flattened key such as "images/cam_left_wrist" */
#define PI0_MPK_MAX_DEPTH 3    /* map nesting: request -> "images" -> camera -> ndarray */
#define PI0_MPK_MAX_PROMPT (1 << 16) /* bytes in the prompt */
#define PI0_MPK_MAX_LIST 4096  /* numbers in a list that is decoded (longer ones are skipped) */

/* A decoded observation. Fill with pi0_mpk_decode_obs, release with pi0_mpk_obs_free. */
typedef struct {
    int n_arrays;
    pi0_array arrays[PI0_MPK_MAX_ARRAYS];   /* key -> keys[i]; data -> request bytes or owned[i] */
    char keys[PI0_MPK_MAX_ARRAYS][PI0_MPK_MAX_KEY];
    void *owned[PI0_MPK_MAX_ARRAYS];        /* copies (byte-swapped, aligned or converted), or NULL */
    char *prompt;                           /* NUL-terminated UTF-8 copy, or NULL when absent */
    int n_skipped;                          /* values that are no array (nil, str, nested lists) */
    char skipped_key[PI0_MPK_MAX_KEY];      /* the first list skipped for its length ("" = none) */
    char skipped_why[96];
} pi0_mpk_obs;

/* Decode one request map. Top-level keys are str (bin keys are read as text too). Values:
 *   ndarray map (bin keys __ndarray__/data/dtype/shape) -> array of that dtype and shape;
 *   numpy scalar (bin key __npgeneric__)                -> 0-d array of its dtype;
 *   plain int / float / bool                            -> 0-d I64 / F64 / BOOL array;
 *   list of at most PI0_MPK_MAX_LIST numbers            -> 1-d F64 array;
 *   nested map without those keys ("images")            -> flattened as "images/<cam>";
 *   "prompt": str, np.str_, or a one-element '<U' array -> out->prompt (UTF-8, no NUL); a prompt of
 *            any other type (nil, number, list, bin, map) is an error, as in openpi;
 *   anything else (nil, other strings, nested lists,
 *   longer lists: the first is named in skipped_key)    -> skipped (counted in n_skipped).
 * Returns 0, or -1 with a message in err (out is then already freed). */
int pi0_mpk_decode_obs(const uint8_t *buf, size_t n, pi0_mpk_obs *out, char *err, size_t err_cap);
void pi0_mpk_obs_free(pi0_mpk_obs *o);

/* Bytes per element of a pi0_array_dtype (0 for an unknown value). */
size_t pi0_mpk_dtype_size(int dtype);

/* A malloc'd byte string; free(data) when done. */
typedef struct {
    uint8_t *data;
    size_t len;
} pi0_mpk_bytes;

/* Encode {"actions": ndarray float32 [rows, cols], "policy_timing": {"infer_ms"},
 * "server_timing": {"infer_ms", "prev_total_ms" (only when prev_total_ms >= 0)}}. */
int pi0_mpk_pack_response(const float *actions, int rows, int cols, double policy_infer_ms,
                          double server_infer_ms, double prev_total_ms, pi0_mpk_bytes *out);

/* Convert a JSON value (the policy metadata) to msgpack as Python's json.loads + msgpack would:
 * objects -> maps with str keys, integral numbers that fit int64 -> int, others -> float64,
 * strings -> str, true/false -> bool, null -> nil. "{}" gives the single byte 0x80. */
int pi0_mpk_pack_json(const char *json, pi0_mpk_bytes *out, char *err, size_t err_cap);

#endif
