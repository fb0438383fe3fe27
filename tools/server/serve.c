/* serve.c - `pi0 serve`: a drop-in for openpi's websocket policy server (PI0_IO.md §4).
 *
 * Loads the checkpoint and builds one pi0_policy, then runs the transport of ws.h: every
 * connection gets the policy metadata as msgpack, every binary message is decoded
 * (msgpack_numpy.h), run through pi0_policy_infer on the single worker thread, and answered with
 * {"actions", "policy_timing", "server_timing"}. A request that fails gets a text message with
 * the error (pi0_last_error() or the decoder's byte-offset message) and close 1011; other clients
 * are not affected.
 *
 * Noise: like openpi, every request starts from fresh noise. Request k (counting every request the
 * worker runs, from 0) uses seed base + k, where base is drawn from getrandom() at startup; the
 * seed of each request is logged, so any reply can be reproduced with `pi0 run --seed S`.
 * `--seed N` makes every request use seed N (deterministic replies, for tests and debugging).
 *
 * Signals: SIGPIPE is ignored for the whole process (writes to a vanished peer must fail with
 * EPIPE, not kill the server). SIGINT and SIGTERM are blocked in every thread and taken by the
 * main thread with sigwait: the server then cancels the running request, drains (see
 * pi0_ws_stop) and the command returns 0. They stay blocked, so a second one changes nothing. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../cli.h"
#include "../tools_common.h"
#include "msgpack_numpy.h"
#include "pi0.h"
#include "pi0_policy.h"
#include "../rtc_cli.h"
#include "rtc_keys.h"
#include "ws.h"

typedef struct {
    const char *model, *host, *robot, *norm_stats, *tokenizer, *default_prompt, *asset_id;
    int discrete_state;          /* --discrete-state-input; -1 auto */
    int port, max_frame_mib, quiet, max_clients, ping_secs;
    int max_queue;               /* -1: no limit */
    int idle_secs, min_rate_kib, max_buffer_mib, steps, drain_secs;
    int allow_encoded;           /* --allow-encoded-images */
    int fixed_seed;              /* --seed given */
    unsigned long long seed;
    pi0_rtc_params rtc;          /* --rtc-*: real-time chunking for requests that send its keys */
    tool_load_opts load;         /* --backend, --weights, --threads, --strict, --progress */
} serve_opts;

/* Returns 0 to serve, 1 after --help, 2 after a usage error. */
static int parse_args(int argc, char **argv, serve_opts *o) {
    *o = (serve_opts){.host = "127.0.0.1", .port = 8000, .max_frame_mib = 64, .max_clients = 64, .ping_secs = 20,
                      .max_queue = -1, .idle_secs = 60, .min_rate_kib = 16, .drain_secs = 3};
    o->load = tool_load_defaults();
    o->discrete_state = -1;
    o->rtc = pi0_rtc_params_default();
    opt_load_block lb;
    rtc_opt_block rb;
    const opt_spec opts[] = {
        {.name = "--model", .type = OPT_STR, .dest = &o->model, .meta = "DIR", .help = "checkpoint directory", .required = 1},
        {.name = "--host", .type = OPT_STR, .dest = &o->host, .meta = "ADDR",
         .help = "address or host name to bind; 0.0.0.0 = all interfaces\n"
                 "(openpi's default; prints a warning: there is no authentication)"},
        {.name = "--port", .type = OPT_INT, .dest = &o->port, .meta = "N", .lo = 0, .hi = 65535,
         .help = "TCP port; 0 = any free port"},
        {.name = "--robot", .type = OPT_STR, .dest = &o->robot, .meta = "NAME", .def = "raw",
         .help = "raw | libero | droid | aloha | aloha_sim"},
        {.name = "--norm-stats", .type = OPT_STR, .dest = &o->norm_stats, .meta = "FILE", .def = "looked up under DIR",
         .help = "norm_stats.json"},
        {.name = "--asset-id", .type = OPT_STR, .dest = &o->asset_id, .meta = "ID",
         .help = "use DIR/assets/ID/norm_stats.json (when DIR has several)"},
        {.name = "--tokenizer", .type = OPT_STR, .dest = &o->tokenizer, .meta = "FILE",
         .def = "looked up under DIR, then the Hugging Face and openpi caches", .help = "SentencePiece model"},
        {.name = "--discrete-state-input", .type = OPT_BOOL, .dest = &o->discrete_state,
         .def = "config.json, else the robot's openpi training config (libero false), else true",
         .help = "π0.5: state in the prompt"},
        {.name = "--default-prompt", .type = OPT_STR, .dest = &o->default_prompt, .meta = "TEXT",
         .help = "prompt for requests without one"},
        {.name = "--max-frame-mib", .type = OPT_INT, .dest = &o->max_frame_mib, .meta = "N", .lo = 1, .hi = 4096,
         .help = "largest accepted message, MiB"},
        {.name = "--max-clients", .type = OPT_INT, .dest = &o->max_clients, .meta = "N", .lo = 1, .hi = 100000,
         .help = "WebSocket clients served at once; one more is closed with\ncode 1013 (try again later)"},
        {.name = "--ping-secs", .type = OPT_INT, .dest = &o->ping_secs, .meta = "N", .lo = 1, .hi = 3600,
         .help = "ping a client silent for N s, drop it after 2N s"},
        {.name = "--max-queue", .type = OPT_INT, .dest = &o->max_queue, .meta = "N", .lo = 0, .hi = 100000, .def = "no limit",
         .help = "requests that may wait behind the running one; one more is refused\n"
                 "with an error and close 1013 (try again later)"},
        {.name = "--idle-secs", .type = OPT_INT, .dest = &o->idle_secs, .meta = "N", .lo = 1, .hi = 86400,
         .help = "close a client that sent no request N s after connecting (1008)"},
        {.name = "--min-rate-kib", .type = OPT_INT, .dest = &o->min_rate_kib, .meta = "N", .lo = 0, .hi = 1 << 20,
         .help = "close a client whose request arrives slower than N KiB/s once 5 s\nhave passed (1008); 0 = no minimum"},
        {.name = "--max-buffer-mib", .type = OPT_INT, .dest = &o->max_buffer_mib, .meta = "N", .lo = 1, .hi = 1 << 20,
         .def = "1/8 of the RAM, at least 2 messages",
         .help = "memory for all buffered requests; a message that does not fit is\nrefused with close 1013"},
        {.name = "--drain-secs", .type = OPT_INT, .dest = &o->drain_secs, .meta = "N", .lo = 1, .hi = 3600,
         .help = "on SIGINT/SIGTERM, time to flush replies and closes"},
        {.name = "--steps", .type = OPT_INT, .dest = &o->steps, .meta = "N", .help = "denoising steps", .lo = 1,
         .hi = OPT_STEPS_MAX, .def = "the checkpoint's, openpi: 10"},
        {.name = "--allow-encoded-images", .type = OPT_FLAG, .dest = &o->allow_encoded,
         .help = "accept PNG/JPEG bytes (1-D uint8 arrays) as images; openpi clients send\n"
                 "decoded arrays, and decoding is costly (default: refused)"},
        {.name = "--seed", .type = OPT_U64, .dest = &o->seed, .meta = "N", .seen = &o->fixed_seed,
         .def = "fresh noise per request, as openpi: seed = random base + request number, logged",
         .help = "every request uses noise seed N (deterministic replies)"},
        {.name = "--quiet", .type = OPT_FLAG, .dest = &o->quiet, .help = "log errors only (default: one line per connection and request)"},
        {0},
    };
    const opt_group groups[] = {
        {NULL, opts},
        {"Loading", opt_load_options(&lb, &o->load, 0)},
        {"Real-time chunking for requests that send 'rtc_prev_actions' and 'rtc_inference_delay'\n"
         "(README \"Real-time chunking\")", rtc_params_options(&rb, &o->rtc)},
    };
    const opt_cmd cmd = {
        .name = "serve",
        .usage = "pi0 serve --model DIR [--host 127.0.0.1] [--port 8000] [--robot NAME] [--norm-stats FILE] [--tokenizer FILE]\n"
                 "          [--asset-id ID] [--discrete-state-input true|false] [--default-prompt TEXT] [--max-frame-mib N]\n"
                 "          [--max-clients N] [--ping-secs N] [--seed N] [--max-queue N] [--idle-secs N] [--min-rate-kib N]\n"
                 "          [--max-buffer-mib N] [--drain-secs N] [--steps N] [--allow-encoded-images]\n"
                 "          [--backend fast|ref] [--weights bf16|f32|int8] [--threads N] [--strict] [--rtc-mode identity|fd|training] ...",
        .about = "Serve a policy over openpi's websocket protocol (msgpack-numpy, metadata on connect,\n"
                 "GET /healthz). Stop with SIGINT or SIGTERM: the running request is cancelled, its client and\n"
                 "queued ones get an error and close 1001, and the server exits 0 within the drain time.\n"
                 "No authentication: keep the default 127.0.0.1, or see README \"Security\" for a proxy with TLS.",
        .epilogue = "Prints \"listening on HOST:PORT\" on stdout once the socket is bound."};
    int r = opt_parse(&cmd, groups, 3, argc, argv, NULL);
    return r ? r : opt_load_check(&cmd, &o->load);
}

// ---- request handler (worker thread) ---------------------------------------------------------

typedef struct {
    pi0_policy *pol;
    int fixed_seed, verbose, allow_encoded, steps;
    uint64_t seed;          /* --seed, or the base of the per-request seeds */
    uint64_t n_requests;    /* requests run so far (worker thread only) */
    pi0_rtc_params rtc;     /* --rtc-* (mode, schedule, beta) */
    int horizon;            /* the model's action horizon H */
} serve_state;

/* The base of the per-request seeds: from the kernel's random pool, else time and pid. */
static uint64_t random_base(void) {
    uint64_t b = 0;
    if (getrandom(&b, sizeof b, GRND_NONBLOCK) == (ssize_t)sizeof b) return b;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int abort_if_gone(void *user) { return atomic_load((const atomic_int *)user) != 0; }

static int reply_error(pi0_ws_reply *rep, const char *prefix, const char *msg) {
    size_t n = strlen(prefix) + strlen(msg) + 1;
    rep->err = malloc(n);
    if (rep->err) snprintf(rep->err, n, "%s%s", prefix, msg);
    return -1;
}

/* A 1-D uint8 array that holds PNG or JPEG bytes: the library would decode it (pi0_image_from_array).
 * openpi's clients send decoded arrays, and a small file can cost seconds or minutes of decoding. */
static const char *encoded_image_key(const pi0_mpk_obs *obs) {
    for (int i = 0; i < obs->n_arrays; i++) {
        const pi0_array *a = &obs->arrays[i];
        const uint8_t *p = a->data;
        if (a->ndim != 1 || a->dtype != PI0_ARR_U8 || a->shape[0] < 3 || !p) continue;
        if ((p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) ||
            (a->shape[0] >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)))
            return a->key;
    }
    return NULL;
}

static int handle(void *user, const pi0_ws_request *req, pi0_ws_reply *rep) {
    serve_state *ss = user;
    if (!req->binary)
        return reply_error(rep, "", "request: got a text message; send the observation as one binary msgpack message");
    pi0_mpk_obs *obs = malloc(sizeof *obs);
    if (!obs) return reply_error(rep, "", "request: out of memory");
    char err[512];
    if (pi0_mpk_decode_obs(req->data, req->len, obs, err, sizeof err)) {
        free(obs);
        return reply_error(rep, "", err);
    }
    const char *enc = ss->allow_encoded ? NULL : encoded_image_key(obs);
    if (enc) {
        snprintf(err, sizeof err, "key '%s': PNG/JPEG bytes; send the decoded image as a uint8 array, as openpi's "
                 "clients do (or start the server with --allow-encoded-images)", enc);
        pi0_mpk_obs_free(obs);
        free(obs);
        return reply_error(rep, "", err);
    }
    pi0_robot_obs ro = {.n_arrays = obs->n_arrays, .arrays = obs->arrays, .prompt = obs->prompt};
    pi0_run_params rp = pi0_run_params_default();
    rp.n_steps = ss->steps;
    rp.seed = ss->fixed_seed ? ss->seed : ss->seed + ss->n_requests;
    ss->n_requests++;
    rp.abort_cb = abort_if_gone;
    rp.abort_user = (void *)req->cancel;
    pi0_rtc_params rtc;
    float *rtc_buf = NULL;   /* real-time chunking keys (rtc_keys.h) */
    int has_rtc = pi0_serve_rtc_keys(obs, ss->horizon, &ss->rtc, &rtc, &rtc_buf, err, sizeof err);
    if (has_rtc < 0) {
        pi0_mpk_obs_free(obs);
        free(obs);
        return reply_error(rep, "", err);
    }
    if (has_rtc) rp.rtc = &rtc;
    pi0_actions act;
    memset(&act, 0, sizeof act);
    double t0 = now_ms();
    pi0_status st = pi0_policy_infer(ss->pol, &ro, &rp, &act);
    double t1 = now_ms();
    free(rtc_buf);
    if (ss->verbose) {
        const char *why = st == PI0_OK ? NULL : pi0_last_error();
        fprintf(stderr, "pi0 serve: conn %llu: seed %llu, %s in %.1f ms%s%s\n", (unsigned long long)req->conn_id,
                (unsigned long long)rp.seed,
                st == PI0_OK ? "inferred" : st == PI0_ERR_ABORTED ? "cancelled" : "failed", t1 - t0,
                why && *why ? ": " : "", why && *why ? why : "");
    }
    if (st != PI0_OK) {
        const char *m = pi0_last_error();
        if (!m || !*m) m = pi0_status_str(st);
        if (obs->skipped_key[0]) {   /* a hint when the policy missed a key the decoder left out */
            char hint[1024];
            snprintf(hint, sizeof hint, "%s (note: key '%s' was ignored: %s)", m, obs->skipped_key, obs->skipped_why);
            pi0_mpk_obs_free(obs);
            free(obs);
            return reply_error(rep, "", hint);
        }
        pi0_mpk_obs_free(obs);
        free(obs);
        return reply_error(rep, "", m);
    }
    pi0_mpk_obs_free(obs);
    free(obs);
    if (act.rows <= 0 || act.cols <= 0 || !act.data)
        return reply_error(rep, "", "internal: the policy returned no actions");
    pi0_mpk_bytes b;
    if (pi0_mpk_pack_response(act.data, act.rows, act.cols, act.infer_ms, t1 - t0, req->prev_total_ms, &b))
        return reply_error(rep, "", "out of memory while encoding the reply");
    rep->data = b.data;
    rep->len = b.len;
    return 0;
}

// ---- command ---------------------------------------------------------------------------------

int cmd_serve(int argc, char **argv) {
    serve_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    signal(SIGPIPE, SIG_IGN);

    pi0_ctx *ctx = NULL;
    pi0_policy *pol = NULL;
    pi0_ws_server *srv = NULL;
    pi0_mpk_bytes hello = {0};
    char err[512];
    rc = 1;
    if (tool_load(o.model, &o.load, &ctx) != PI0_OK) { cli_error("%s", pi0_last_error()); goto done; }
    pi0_policy_params pp = pi0_policy_params_default();
    if (o.robot) pp.robot = o.robot;
    if (o.tokenizer) pp.tokenizer_path = o.tokenizer;
    if (o.norm_stats) pp.norm_stats_path = o.norm_stats;
    if (o.default_prompt) pp.default_prompt = o.default_prompt;
    pp.asset_id = o.asset_id;
    pp.discrete_state_input = o.discrete_state;
    if (pi0_policy_new(ctx, o.model, &pp, &pol) != PI0_OK) { cli_error("%s", pi0_last_error()); goto done; }
    if (pi0_mpk_pack_json(pi0_policy_metadata_json(pol), &hello, err, sizeof err)) { cli_error("%s", err); goto done; }

    /* Block SIGINT/SIGTERM before any thread starts so that they inherit the mask and only
     * sigwait below receives them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    serve_state ss = {.pol = pol, .fixed_seed = o.fixed_seed, .verbose = !o.quiet, .allow_encoded = o.allow_encoded,
                      .steps = o.steps, .seed = o.fixed_seed ? (uint64_t)o.seed : random_base(), .rtc = o.rtc,
                      .horizon = pi0_config_of(ctx)->action_horizon};
    pi0_ws_opts wo = {
        .host = o.host, .port = o.port, .max_frame_bytes = (size_t)o.max_frame_mib << 20,
        .hello = hello.data, .hello_len = hello.len, .handle = handle, .user = &ss, .verbose = !o.quiet,
        .max_clients = o.max_clients, .ping_secs = o.ping_secs, .max_queue = o.max_queue, .idle_secs = o.idle_secs,
        .min_rate = o.min_rate_kib ? (long)o.min_rate_kib * 1024 : -1,
        .max_buffer_bytes = (size_t)o.max_buffer_mib << 20, .drain_ms = o.drain_secs * 1000,
    };
    if (pi0_ws_start(&wo, &srv, err, sizeof err)) {
        pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
        cli_error("%s", err);
        goto done;
    }
    char addr[64];
    if (!pi0_ws_resolve(o.host, addr, sizeof addr, err, sizeof err) && !pi0_ws_is_loopback(addr))
        fprintf(stderr, "pi0 serve: warning: listening on %s (%s) with no authentication: anyone who can reach this "
                "port can run the policy; bind 127.0.0.1 behind a proxy with TLS and a token (README \"Security\")\n",
                o.host, addr[0] ? addr : "every interface");
    printf("listening on %s:%d\n", o.host, pi0_ws_port(srv));
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "pi0 serve: %s received, cancelling the running request and draining (at most %d s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", o.drain_secs + 2);
    /* SIGINT/SIGTERM stay blocked until the process exits: a second signal during the drain is
     * left pending and ignored, so the exit status is still 0 (not death by signal). */
    if (pi0_ws_stop(srv)) {
        /* The worker still runs inside the policy: nothing can be freed; leave now. */
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    rc = 0;
done:
    free(hello.data);
    pi0_policy_free(pol);
    pi0_free(ctx);
    return rc;
}
