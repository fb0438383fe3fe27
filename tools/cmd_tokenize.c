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
#include "io/prompt.h"
#include "io/tokenizer.h"

#define PI0_DEFAULT_LEN 48   /* openpi Pi0Config.max_token_len for π0 */
#define PI05_DEFAULT_LEN 200 /* and for π0.5 */
#define MAX_STATE 256

static void usage(FILE *f) {
    fprintf(f,
            "usage: pi0 tokenize --tokenizer FILE [--raw] [--pi05 --state V1,V2,...] [--max-len N] [--no-pad] TEXT...\n"
            "\n"
            "Print the token ids of each TEXT, one line per TEXT, as the model receives them.\n"
            "\n"
            "  --tokenizer FILE  SentencePiece BPE model (PaliGemma's paligemma_tokenizer.model) [required]\n"
            "  --raw             plain SentencePiece encode: no cleaning, no BOS, no newline, no padding\n"
            "  --pi05            π0.5 layout: [bos] + encode(\"Task: T, State: S;\\nAction: \") [default: π0 layout\n"
            "                    [bos] + encode(T) + encode(\"\\n\")], T cleaned as openpi does\n"
            "  --state V,...     normalized robot state for --pi05 (each value is discretized into 256 bins)\n"
            "  --max-len N       prompt length: pad with 0 or truncate [default: %d for π0, %d for π0.5]\n"
            "  --no-pad          print only the real tokens (mask 1), not the padding\n"
            "  -h, --help        this text\n",
            PI0_DEFAULT_LEN, PI05_DEFAULT_LEN);
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "error: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    fprintf(stderr, "run 'pi0 tokenize --help' for usage\n");
    return 2;
}

static int parse_state(const char *s, double *out, int cap, int *n) {
    *n = 0;
    for (;;) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno == ERANGE || (*end != ',' && *end != '\0')) return -1;
        if (*n == cap) return -1;
        out[(*n)++] = v;
        if (*end == '\0') return 0;
        s = end + 1;
    }
}

static void print_ids(const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int raw = 0, pi05 = 0, no_pad = 0, max_len = 0, n_state = -1, first_text = argc;
    double state[MAX_STATE];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--raw")) {
            raw = 1;
        } else if (!strcmp(a, "--pi05")) {
            pi05 = 1;
        } else if (!strcmp(a, "--no-pad")) {
            no_pad = 1;
        } else if (!strcmp(a, "--tokenizer") || !strcmp(a, "--state") || !strcmp(a, "--max-len")) {
            if (i + 1 >= argc) return usage_error("missing value for", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--tokenizer")) {
                path = v;
            } else if (!strcmp(a, "--state")) {
                if (parse_state(v, state, MAX_STATE, &n_state))
                    return usage_error("--state wants comma-separated numbers (at most 256)", v);
            } else {
                char *end;
                long m = strtol(v, &end, 10);
                if (end == v || *end || m < 1 || m > 1000000) return usage_error("--max-len wants 1..1000000", v);
                max_len = (int)m;
            }
        } else if (!strcmp(a, "--")) {
            first_text = i + 1;
            break;
        } else if (a[0] == '-' && a[1] == '-') {
            return usage_error("unknown option", a);
        } else {
            first_text = i;
            break;
        }
    }
    if (!path) return usage_error("--tokenizer FILE is required", NULL);
    if (first_text >= argc) return usage_error("no TEXT given", NULL);
    if (raw && (pi05 || n_state >= 0 || max_len || no_pad))
        return usage_error("--raw cannot be combined with --pi05, --state, --max-len or --no-pad", NULL);
    if (pi05 && n_state < 0) return usage_error("--pi05 needs --state", NULL);
    if (!pi05 && n_state >= 0) return usage_error("--state is only used with --pi05", NULL);
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
