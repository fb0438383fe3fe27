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
    const char *model, *host, *robot, *norm_stats, *tokenizer, *default_prompt, *backend, *asset_id;
    int discrete_state;          /* --discrete-state-input; -1 auto */
    int port, max_frame_mib, threads, quiet, max_clients, ping_secs;
    int max_queue;               /* -1: no limit */
    int idle_secs, min_rate_kib, max_buffer_mib, steps, drain_secs;
    int allow_encoded;           /* --allow-encoded-images */
    int fixed_seed;              /* --seed given */
    unsigned long long seed;
    pi0_rtc_params rtc;          /* --rtc-*: real-time chunking for requests that send its keys */
} serve_opts;

static void usage(FILE *f) {
    pi0_params p = pi0_params_default();
    pi0_policy_params pp = pi0_policy_params_default();
    fprintf(f,
            "usage: pi0 serve --model DIR [options]\n"
            "Serve a policy over openpi's websocket protocol (msgpack-numpy, metadata on connect,\n"
            "GET /healthz). Stop with SIGINT or SIGTERM: the running request is cancelled, its client and\n"
            "queued ones get an error and close 1001, and the server exits 0 within the drain time.\n"
            "No authentication: keep the default 127.0.0.1, or see README \"Security\" for a proxy with TLS.\n"
            "\n"
            "  --model DIR            checkpoint directory (required)\n"
            "  --host ADDR            address or host name to bind [127.0.0.1]; 0.0.0.0 = all interfaces\n"
            "                         (openpi's default; prints a warning: there is no authentication)\n"
            "  --port N               TCP port [8000]; 0 = any free port\n"
            "  --robot NAME           raw | aloha | droid | libero [%s]\n"
            "  --norm-stats FILE      norm_stats.json [looked up under DIR]\n"
            "  --asset-id ID          use DIR/assets/ID/norm_stats.json (when DIR has several)\n"
            "  --tokenizer FILE       SentencePiece model [looked up under DIR, then the Hugging Face\n"
            "                         and openpi caches]\n"
            "  --discrete-state-input true|false  π0.5: state in the prompt [config.json, else the\n"
            "                         robot's openpi training config (libero false), else true]\n"
            "  --default-prompt TEXT  prompt for requests without one [none]\n"
            "  --max-frame-mib N      largest accepted message, MiB [64]\n"
            "  --max-clients N        WebSocket clients served at once; one more is closed with\n"
            "                         code 1013 (try again later) [64]\n"
            "  --ping-secs N          ping a client silent for N s, drop it after 2N s [20]\n"
            "  --max-queue N          requests that may wait behind the running one; one more is refused\n"
            "                         with an error and close 1013 (try again later) [no limit]\n"
            "  --idle-secs N          close a client that sent no request N s after connecting (1008) [60]\n"
            "  --min-rate-kib N       close a client whose request arrives slower than N KiB/s once 5 s\n"
            "                         have passed (1008); 0 = no minimum [16]\n"
            "  --max-buffer-mib N     memory for all buffered requests; a message that does not fit is\n"
            "                         refused with close 1013 [1/8 of the RAM, at least 2 messages]\n"
            "  --drain-secs N         on SIGINT/SIGTERM, time to flush replies and closes [3]\n"
            "  --steps N              denoising steps [the checkpoint's, openpi: 10]\n"
            "  --allow-encoded-images accept PNG/JPEG bytes (1-D uint8 arrays) as images; openpi clients send\n"
            "                         decoded arrays, and decoding is costly [refused]\n"
            "  --seed N               every request uses noise seed N (deterministic replies)\n"
            "                         [fresh noise per request, as openpi: seed = random base + request\n"
            "                         number, logged per request]\n"
            "  --threads N            inference threads; 0 = online CPUs [%d]\n"
            "  --backend ref|fast     kernels [%s]\n"
            "  --quiet                log errors only (default: one line per connection and request)\n"
            "  --rtc-mode identity|fd, --rtc-schedule linear|exp|ones|zeros, --rtc-beta B, --rtc-fd-step E\n"
            "                         real-time chunking for requests that send 'rtc_prev_actions' and\n"
            "                         'rtc_inference_delay' (README \"Real-time chunking\") [identity, linear, 10]\n"
            "Prints \"listening on HOST:PORT\" on stdout once the socket is bound.\n",
            pp.robot ? pp.robot : "raw", p.n_threads, p.backend == PI0_BACKEND_REF ? "ref" : "fast");
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, serve_opts *o) {
    *o = (serve_opts){.host = "127.0.0.1", .port = 8000, .max_frame_mib = 64, .max_clients = 64, .ping_secs = 20,
                      .max_queue = -1, .idle_secs = 60, .min_rate_kib = 16, .drain_secs = 3};
    o->threads = pi0_params_default().n_threads;
    o->discrete_state = -1;
    o->rtc = pi0_rtc_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 1; }
        if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
        if (!strcmp(a, "--allow-encoded-images")) { o->allow_encoded = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "error: %s needs a value (or is unknown)\n", a); return 2; }
        const char *v = argv[++i];
        int r;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--host")) o->host = v;
        else if (!strcmp(a, "--robot")) o->robot = v;
        else if (!strcmp(a, "--norm-stats")) o->norm_stats = v;
        else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
        else if (!strcmp(a, "--asset-id")) o->asset_id = v;
        else if (!strcmp(a, "--discrete-state-input")) {
            if ((o->discrete_state = tool_parse_bool(v)) < 0) {
                fprintf(stderr, "error: --discrete-state-input %s: expected true or false\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--default-prompt")) o->default_prompt = v;
        else if (!strcmp(a, "--backend")) {
            if (strcmp(v, "ref") && strcmp(v, "fast")) { fprintf(stderr, "error: --backend %s: expected ref or fast\n", v); return 2; }
            o->backend = v;
        } else if (!strcmp(a, "--port")) {
            if (parse_int(v, 0, 65535, &o->port)) { fprintf(stderr, "error: --port %s: expected 0..65535\n", v); return 2; }
        } else if (!strcmp(a, "--max-frame-mib")) {
            if (parse_int(v, 1, 4096, &o->max_frame_mib)) { fprintf(stderr, "error: --max-frame-mib %s: expected 1..4096\n", v); return 2; }
        } else if (!strcmp(a, "--max-clients")) {
            if (parse_int(v, 1, 100000, &o->max_clients)) { fprintf(stderr, "error: --max-clients %s: expected 1..100000\n", v); return 2; }
        } else if (!strcmp(a, "--ping-secs")) {
            if (parse_int(v, 1, 3600, &o->ping_secs)) { fprintf(stderr, "error: --ping-secs %s: expected 1..3600\n", v); return 2; }
        } else if (!strcmp(a, "--max-queue")) {
            if (parse_int(v, 0, 100000, &o->max_queue)) { fprintf(stderr, "error: --max-queue %s: expected 0..100000\n", v); return 2; }
        } else if (!strcmp(a, "--idle-secs")) {
            if (parse_int(v, 1, 86400, &o->idle_secs)) { fprintf(stderr, "error: --idle-secs %s: expected 1..86400\n", v); return 2; }
        } else if (!strcmp(a, "--min-rate-kib")) {
            if (parse_int(v, 0, 1 << 20, &o->min_rate_kib)) { fprintf(stderr, "error: --min-rate-kib %s: expected 0..1048576\n", v); return 2; }
        } else if (!strcmp(a, "--max-buffer-mib")) {
            if (parse_int(v, 1, 1 << 20, &o->max_buffer_mib)) { fprintf(stderr, "error: --max-buffer-mib %s: expected 1..1048576\n", v); return 2; }
        } else if (!strcmp(a, "--drain-secs")) {
            if (parse_int(v, 1, 3600, &o->drain_secs)) { fprintf(stderr, "error: --drain-secs %s: expected 1..3600\n", v); return 2; }
        } else if (!strcmp(a, "--steps")) {
            if (parse_int(v, 1, 10000, &o->steps)) { fprintf(stderr, "error: --steps %s: expected 1..10000\n", v); return 2; }
        } else if (!strcmp(a, "--seed")) {
            if (tool_parse_u64(v, &o->seed)) { fprintf(stderr, "error: --seed %s: expected an unsigned integer\n", v); return 2; }
            o->fixed_seed = 1;
        } else if (!strcmp(a, "--threads")) {
            if (parse_int(v, 0, 4096, &o->threads)) { fprintf(stderr, "error: --threads %s: expected 0..4096\n", v); return 2; }
        } else if ((r = rtc_params_option(&o->rtc, a, v)) != 0) {
            if (r < 0) return 2;
        } else { fprintf(stderr, "error: unknown option %s (see pi0 serve --help)\n", a); return 2; }
    }
    if (!o->model) { fprintf(stderr, "error: --model DIR is required (see pi0 serve --help)\n"); return 2; }
    return 0;
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

    pi0_params p = pi0_params_default();
    p.n_threads = o.threads;
    if (o.backend) p.backend = strcmp(o.backend, "ref") ? PI0_BACKEND_FAST : PI0_BACKEND_REF;
    tool_progress_attach(&p);  /* a full-size F32 checkpoint takes a while to convert */
    pi0_ctx *ctx = NULL;
    pi0_policy *pol = NULL;
    pi0_ws_server *srv = NULL;
    pi0_mpk_bytes hello = {0};
    char err[512];
    rc = 1;
    if (pi0_load(o.model, &p, &ctx) != PI0_OK) { cli_error("%s", pi0_last_error()); goto done; }
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
