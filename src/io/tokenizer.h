/* tokenizer.h - SentencePiece BPE tokenizer (the PaliGemma `.model` file), host side.
 *
 * Contract (PI0_IO.md §1): pi0_tok_encode gives the same ids as sentencepiece's
 * SentencePieceProcessor::EncodeAsIds (checked against spm_encode 0.1.97 in tests/test_tokenizer.c)
 * for BPE models: the normalizer (user-defined pieces passed through, precompiled charsmap if any,
 * remove_extra_whitespaces, add_dummy_prefix / treat_whitespace_as_suffix, escape_whitespaces with
 * U+2581, invalid UTF-8 bytes become U+FFFD), then user-defined pieces matched longest-first as
 * frozen symbols, highest-score merges with the leftmost pair first, UNUSED pieces re-split, and
 * unknown symbols emitted as <0xHH> byte pieces (byte_fallback) or as one <unk> per run.
 * No BOS/EOS is added: callers prepend pi0_tok_bos_id() themselves (see prompt.h).
 *
 * Only model_type = BPE is supported (UNIGRAM/WORD/CHAR files fail with PI0_ERR_UNSUPPORTED).
 * A non-empty precompiled_charsmap (e.g. nmt_nfkc) is implemented, not refused: its double-array
 * trie is searched like sentencepiece's Normalizer does; a corrupt trie fails at encode time.
 *
 * Thread safety: a loaded tokenizer is read-only; any number of threads may encode with it.
 * Every error names the file and, for format errors, the byte offset at fault.
 */
#ifndef PI0_TOKENIZER_H
#define PI0_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "pi0.h"

typedef struct pi0_tokenizer pi0_tokenizer;

/* SentencePiece piece types (sentencepiece_model.proto, ModelProto.SentencePiece.Type). */
typedef enum {
    PI0_PIECE_NORMAL = 1,
    PI0_PIECE_UNKNOWN = 2,
    PI0_PIECE_CONTROL = 3,
    PI0_PIECE_USER_DEFINED = 4,
    PI0_PIECE_UNUSED = 5,
    PI0_PIECE_BYTE = 6
} pi0_piece_type;

/* Load a serialized ModelProto. On error *out is NULL and pi0_last_error() names the file and the
 * byte offset (FORMAT), or the reason (IO, NOMEM, UNSUPPORTED). */
pi0_status pi0_tok_load(const char *path, pi0_tokenizer **out);
/* Same from memory (copied); `name` is used in messages. */
pi0_status pi0_tok_load_mem(const void *data, size_t nbytes, const char *name, pi0_tokenizer **out);
void pi0_tok_free(pi0_tokenizer *t); /* NULL is a no-op */

/* Encode len bytes of text (any bytes; NUL allowed). Writes the first min(total, cap) ids to ids
 * (ids may be NULL when cap == 0) and the total number of ids to *n, like snprintf: the caller
 * detects overflow by *n > cap. Allocates scratch proportional to len per call. */
pi0_status pi0_tok_encode(const pi0_tokenizer *t, const char *text, size_t len, int32_t *ids, int cap,
                          int *n);

int pi0_tok_n_pieces(const pi0_tokenizer *t);
/* Id of the piece with exactly this text (any type), or -1. */
int pi0_tok_piece_id(const pi0_tokenizer *t, const char *piece, size_t len);
/* Text of piece `id` (not NUL-terminated; length in *len), or NULL if id is out of range. Valid as
 * long as t. */
const char *pi0_tok_piece(const pi0_tokenizer *t, int id, size_t *len);
float pi0_tok_score(const pi0_tokenizer *t, int id);
pi0_piece_type pi0_tok_type(const pi0_tokenizer *t, int id); /* 0 when id is out of range */

/* Special ids as sentencepiece reports them: the id of trainer_spec.{bos,eos,pad}_piece (defaults
 * "<s>", "</s>", "<pad>") when that piece is a CONTROL piece, else -1; unk is always defined. */
int pi0_tok_bos_id(const pi0_tokenizer *t);
int pi0_tok_eos_id(const pi0_tokenizer *t);
int pi0_tok_pad_id(const pi0_tokenizer *t);
int pi0_tok_unk_id(const pi0_tokenizer *t);

/* Normalizer flags as read from the file (proto defaults applied), for `pi0 info`-style output. */
typedef struct {
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    int treat_whitespace_as_suffix, byte_fallback;
    int has_charsmap;       /* a non-empty precompiled_charsmap is in use */
    const char *norm_name;  /* normalizer_spec.name ("" if absent); valid as long as t */
} pi0_tok_info;
pi0_tok_info pi0_tok_get_info(const pi0_tokenizer *t);

#endif
