/* cmd_tokenize.c - `pi0 tokenize`: print the token ids a prompt becomes (PI0_IO.md §1.5).
 *
 * One output line of space-separated ids per TEXT argument. Default: the π0 prompt layout
 * ([bos] + encode(clean(TEXT)) + encode("\n"), padded with 0 / truncated to --max-len). --pi05 uses
 * the π0.5 layout with the discretized --state; --raw is the bare SentencePiece encode.
 * Exit codes: 0 ok, 1 error (file, encoding), 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tools_api.h"
#include "tools_common.h"

#define PI0_DEFAULT_LEN 48   /* openpi Pi0Config.max_token_len for π0 (shown in --help) */
#define PI05_DEFAULT_LEN 200 /* and for π0.5 */
#define MAX_STATE 256

/* --state V,...: dest is a tok_state. */
typedef struct {
    double v[MAX_STATE];
    int n; /* -1: not given */
} tok_state;

static const char *parse_state(const char *arg, void *dest) {
    tok_state *st = dest;
    return tool_parse_floats(arg, st->v, MAX_STATE, &st->n) ? "expected comma-separated numbers (at most 256)" : NULL;
}

static void print_ids(const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int raw = 0, pi05 = 0, no_pad = 0, max_len = 0, first_text = argc;
    tok_state st = {.n = -1};
    const opt_spec opts[] = {
        {.name = "--tokenizer", .type = OPT_STR, .dest = &path, .meta = "FILE", .required = 1,
         .help = "SentencePiece BPE model (PaliGemma's paligemma_tokenizer.model)"},
        {.name = "--raw", .type = OPT_FLAG, .dest = &raw,
         .help = "plain SentencePiece encode: no cleaning, no BOS, no newline, no padding"},
        {.name = "--pi05", .type = OPT_FLAG, .dest = &pi05,
         .help = "π0.5 layout: [bos] + encode(\"Task: T, State: S;\\nAction: \") (default: π0 layout\n"
                 "[bos] + encode(T) + encode(\"\\n\")), T cleaned as openpi does"},
        {.name = "--state", .type = OPT_CUSTOM, .dest = &st, .parse = parse_state, .meta = "V,...",
         .help = "normalized robot state for --pi05 (each value is discretized into 256 bins)"},
        {.name = "--max-len", .type = OPT_INT, .dest = &max_len, .meta = "N", .lo = 1, .hi = 1000000,
         .def = "48 for π0, 200 for π0.5", .help = "prompt length: pad with 0 or truncate"},
        {.name = "--no-pad", .type = OPT_FLAG, .dest = &no_pad, .help = "print only the real tokens (mask 1), not the padding"},
        {0},
    };
    const opt_group groups[] = {{NULL, opts}};
    const opt_cmd cmd = {
        .name = "tokenize",
        .usage = "pi0 tokenize --tokenizer FILE [--raw] [--pi05 --state V,...] [--max-len N] [--no-pad] TEXT...",
        .about = "Print the token ids of each TEXT, one line per TEXT, as the model receives them.",
        .positional = "TEXT..."};
    int r = opt_parse(&cmd, groups, 1, argc, argv, &first_text);
    if (r) return r == OPT_HELP ? 0 : 2;
    int n_state = st.n;
    double *state = st.v;
    if (first_text >= argc) return opt_usage_error(&cmd, "no TEXT given");
    if (raw && (pi05 || n_state >= 0 || max_len || no_pad))
        return opt_usage_error(&cmd, "--raw cannot be combined with --pi05, --state, --max-len or --no-pad");
    if (pi05 && n_state < 0) return opt_usage_error(&cmd, "--pi05 needs --state");
    if (!pi05 && n_state >= 0) return opt_usage_error(&cmd, "--state is only used with --pi05");
    if (!max_len) max_len = pi05 ? PI05_DEFAULT_LEN : PI0_DEFAULT_LEN;

    pi0_tokenizer *tok = NULL;
    if (pi0_tok_load(path, &tok)) return cli_error("%s", pi0_last_error());
    pi0_text_encoder enc;
    int32_t *ids = NULL, *mask = NULL;
    int rc = 0;
    if (!raw && pi0_text_encoder_spm(tok, &enc)) {
        rc = cli_error("%s: %s", path, pi0_last_error());
        goto done;
    }
    for (int i = first_text; i < argc && rc == 0; i++) {
        const char *text = argv[i];
        int n = 0;
        if (raw) {
            size_t len = strlen(text);
            if (pi0_tok_encode(tok, text, len, NULL, 0, &n)) {
                rc = cli_error("%s", pi0_last_error());
                break;
            }
            int32_t *r = realloc(ids, sizeof(int32_t) * (size_t)(n + 1));
            if (!r) {
                rc = cli_error("out of memory for %d ids", n);
                break;
            }
            ids = r;
            if (pi0_tok_encode(tok, text, len, ids, n, &n)) {
                rc = cli_error("%s", pi0_last_error());
                break;
            }
            print_ids(ids, n);
            continue;
        }
        if (!ids) {
            ids = malloc(sizeof(int32_t) * (size_t)max_len);
            mask = malloc(sizeof(int32_t) * (size_t)max_len);
            if (!ids || !mask) {
                rc = cli_error("out of memory for %d ids", max_len);
                break;
            }
        }
        pi0_status s = pi05 ? pi0_prompt_pi05(&enc, text, state, n_state, max_len, ids, mask, &n)
                            : pi0_prompt_pi0(&enc, text, max_len, ids, mask, &n);
        if (s) {
            rc = cli_error("%s", pi0_last_error());
            break;
        }
        print_ids(ids, no_pad ? n : max_len);
    }
done:
    free(ids);
    free(mask);
    pi0_tok_free(tok);
    return rc;
}
