/* ws.c - WebSocket/HTTP transport and the request queue of the policy server (contract in ws.h).
 *
 * Threads: the network thread runs libwebsockets' service loop and is the only one that touches
 * a `conn` or calls lws_* (except lws_cancel_service, which lws documents as thread-safe). The
 * worker thread pops jobs in FIFO order, calls the handler and pushes the job to the done list,
 * then wakes the network thread with lws_cancel_service; the network thread turns finished jobs
 * into messages (LWS_CALLBACK_EVENT_WAIT_CANCELLED). The mutex guards the two lists and job->state.
 * A job outlives its connection if the client leaves mid-request: CLOSED unlinks a pending job
 * (never run) or marks a running one cancelled and orphaned, and the done-list drain frees it.
 *
 * Liveness uses libwebsockets' validity timer (retry_and_idle_policy: PING after ping_secs without
 * proof of life, hang up after 2 * ping_secs). A received message counts as proof of life. A
 * connection with a job is not read (rx flow control), so it could not see the PONG; a 1 s timer
 * on the network thread (keepalive_cb) walks the connection list and confirms those. */
#include "ws.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { JOB_PENDING, JOB_RUNNING, JOB_DONE };

typedef struct out_msg {
    struct out_msg *next;
    int text;       /* 1: text frame (an error message) */
    int kind;       /* OUT_HELLO, OUT_REPLY, OUT_ERROR */
    size_t len;
    uint8_t buf[];  /* LWS_PRE bytes of headroom, then len bytes */
} out_msg;
enum { OUT_HELLO, OUT_REPLY, OUT_ERROR };

struct conn;
typedef struct job {
    struct job *next;
    struct conn *conn;     /* network thread only; NULL once the client is gone */
    int state;             /* under mu */
    uint8_t *data;
    pi0_ws_request req;
    atomic_int cancel;
    pi0_ws_reply rep;
} job;

typedef struct conn {      /* libwebsockets per-session data (zeroed by lws) */
    struct lws *wsi;
    uint64_t id;
    int is_ws;             /* ESTABLISHED seen */
    uint8_t *rx;           /* message being assembled */
    size_t rx_len, rx_cap;
    int rx_binary;
    int failed;            /* an error is queued: ignore further input */
    job *job;              /* queued or running request, or NULL */
    out_msg *out_head, *out_tail;
    int close_code;        /* after the queue is flushed: close with this code */
    int close_now;
    double wait_start_ms;  /* when the server started waiting for the next request */
    double prev_total_ms;  /* -1 until the first reply has been sent */
    int counted;           /* counts towards max_clients (not a refused connection) */
    int linked;            /* in the server's connection list */
    struct conn *prev, *next;
    char close_reason[124];/* reason sent with close_code ("" = openpi's error reason) */
    char peer[64];
} conn;

struct pi0_ws_server {
    pi0_ws_opts o;
    uint8_t *hello;
    struct lws_context *ctx;
    int port;
    pthread_t net_thread, worker_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *pend_head, *pend_tail;   /* under mu */
    job *done_head, *done_tail;   /* under mu */
    job *running;                 /* under mu */
    int worker_stop;              /* under mu */
    atomic_int worker_done, net_stop, net_done;
    uint64_t next_conn_id;        /* network thread only */
    int n_with_output;            /* connections with queued messages; network thread only */
    int draining;
    int n_clients;                /* counted WebSocket connections; network thread only */
    conn *conns;                  /* every linked connection; network thread only */
    lws_retry_bo_t idle_policy;   /* ping / hang-up times */
    lws_sorted_usec_list_t keepalive;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#define LOG(s, ...) do { if ((s)->o.verbose) fprintf(stderr, "pi0 serve: " __VA_ARGS__); } while (0)

static void job_free(job *j) {
    if (!j) return;
    free(j->data);
    free(j->rep.data);
    free(j->rep.err);
    free(j);
}

// ---- worker thread ---------------------------------------------------------------------------

static void *worker_main(void *arg) {
    pi0_ws_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->pend_head && !s->worker_stop) pthread_cond_wait(&s->cv, &s->mu);
        if (s->worker_stop) {   /* drain: the running job (if any) has finished; queued ones are dropped */
            pthread_mutex_unlock(&s->mu);
            break;
        }
        job *j = s->pend_head;
        s->pend_head = j->next;
        if (!s->pend_head) s->pend_tail = NULL;
        j->next = NULL;
        j->state = JOB_RUNNING;
        s->running = j;
        pthread_mutex_unlock(&s->mu);

        if (s->o.handle(s->o.user, &j->req, &j->rep) != 0 && !j->rep.err) {
            j->rep.err = strdup("request failed (no message)");
        }
        if (j->rep.err) { free(j->rep.data); j->rep.data = NULL; }

        pthread_mutex_lock(&s->mu);
        j->state = JOB_DONE;
        s->running = NULL;
        if (s->done_tail) s->done_tail->next = j; else s->done_head = j;
        s->done_tail = j;
        pthread_mutex_unlock(&s->mu);
        lws_cancel_service(s->ctx);
    }
    atomic_store(&s->worker_done, 1);
    lws_cancel_service(s->ctx);
    return NULL;
}

// ---- network thread: per-connection output queue -------------------------------------------

static int queue_out(pi0_ws_server *s, conn *c, int kind, const void *data, size_t len) {
    out_msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m) return -1;
    m->next = NULL;
    m->kind = kind;
    m->text = kind == OUT_ERROR;
    m->len = len;
    if (len) memcpy(m->buf + LWS_PRE, data, len);
    if (!c->out_head) s->n_with_output++;
    if (c->out_tail) c->out_tail->next = m; else c->out_head = m;
    c->out_tail = m;
    lws_callback_on_writable(c->wsi);
    return 0;
}

/* Queue an error text message, then close with 1011 and openpi's reason. Stops reading. */
static void fail_conn(pi0_ws_server *s, conn *c, const char *msg) {
    LOG(s, "conn %llu (%s): error: %s\n", (unsigned long long)c->id, c->peer, msg);
    c->failed = 1;
    c->close_code = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
    lws_rx_flow_control(c->wsi, 0);
    if (queue_out(s, c, OUT_ERROR, msg, strlen(msg))) c->close_now = 1;
    lws_callback_on_writable(c->wsi);
}

static void conn_release(pi0_ws_server *s, conn *c) {
    if (c->job) {
        pthread_mutex_lock(&s->mu);
        job *j = c->job;
        if (j->state == JOB_PENDING) {   /* never started: unlink and drop */
            job **pp = &s->pend_head, *prev = NULL;
            while (*pp && *pp != j) { prev = *pp; pp = &(*pp)->next; }
            if (*pp) { *pp = j->next; if (s->pend_tail == j) s->pend_tail = prev; }
            pthread_mutex_unlock(&s->mu);
            job_free(j);
        } else {                         /* running or done: the drain frees it */
            j->conn = NULL;
            atomic_store(&j->cancel, 1);
            pthread_mutex_unlock(&s->mu);
        }
        c->job = NULL;
    }
    if (c->out_head) s->n_with_output--;
    while (c->out_head) {
        out_msg *m = c->out_head;
        c->out_head = m->next;
        free(m);
    }
    c->out_tail = NULL;
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
}

/* Turn finished jobs into messages on their connections. */
static void drain_done(pi0_ws_server *s) {
    pthread_mutex_lock(&s->mu);
    job *j = s->done_head;
    s->done_head = s->done_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (j) {
        job *next = j->next;
        conn *c = j->conn;
        if (c) {
            c->job = NULL;
            if (j->rep.err) {
                fail_conn(s, c, j->rep.err);
            } else {
                LOG(s, "conn %llu (%s): reply %zu bytes\n", (unsigned long long)c->id, c->peer, j->rep.len);
                if (queue_out(s, c, OUT_REPLY, j->rep.data, j->rep.len)) fail_conn(s, c, "out of memory for the reply");
            }
        }
        job_free(j);
        j = next;
    }
}

static void submit(pi0_ws_server *s, conn *c) {
    if (c->job) {   /* cannot happen while reading is paused; refuse rather than queue */
        fail_conn(s, c, "request sent before the previous reply");
        return;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) { fail_conn(s, c, "out of memory for the request"); return; }
    j->conn = c;
    j->data = c->rx;
    j->req.data = c->rx ? c->rx : (const uint8_t *)"";
    j->req.len = c->rx_len;
    j->req.binary = c->rx_binary;
    j->req.prev_total_ms = c->prev_total_ms;
    j->req.conn_id = c->id;
    atomic_init(&j->cancel, 0);
    j->req.cancel = &j->cancel;
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
    c->job = j;
    LOG(s, "conn %llu (%s): request %zu bytes\n", (unsigned long long)c->id, c->peer, j->req.len);
    lws_rx_flow_control(c->wsi, 0);   /* one request at a time per connection */
    pthread_mutex_lock(&s->mu);
    j->state = JOB_PENDING;
    if (s->pend_tail) s->pend_tail->next = j; else s->pend_head = j;
    s->pend_tail = j;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int on_receive(pi0_ws_server *s, conn *c, const uint8_t *in, size_t len) {
    if (c->failed) return 0;
    lws_validity_confirmed(c->wsi);   /* the peer is alive: restart the ping / hang-up clock */
    size_t max = s->o.max_frame_bytes;
    if (lws_is_first_fragment(c->wsi)) {
        c->rx_len = 0;
        c->rx_binary = lws_frame_is_binary(c->wsi);
    }
    size_t rem = lws_remaining_packet_payload(c->wsi);   /* rest of this frame, from its header */
    if (len > max || rem > max || c->rx_len > max - len || c->rx_len + len > max - rem) {
        char msg[160];
        snprintf(msg, sizeof msg, "message too large: at least %llu bytes, the limit is %zu bytes (--max-frame-mib)",
                 (unsigned long long)c->rx_len + len + rem, max);
        fail_conn(s, c, msg);
        free(c->rx);
        c->rx = NULL;
        c->rx_len = c->rx_cap = 0;
        return 0;
    }
    size_t need = c->rx_len + len + rem;
    if (need > c->rx_cap) {
        /* The frame's declared size is known and within the limit: allocate it. Later frames of
         * a fragmented message grow the buffer geometrically, still capped at max. */
        size_t cap = c->rx_cap * 2 > need ? c->rx_cap * 2 : need;
        if (cap > max) cap = max;
        uint8_t *p = realloc(c->rx, cap ? cap : 1);
        if (!p) { fail_conn(s, c, "out of memory for the request"); return 0; }
        c->rx = p;
        c->rx_cap = cap;
    }
    if (len) memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (lws_is_final_fragment(c->wsi) && rem == 0) submit(s, c);
    return 0;
}

static int on_writeable(pi0_ws_server *s, conn *c) {
    if (c->close_now) {
        const char *reason = c->close_reason[0] ? c->close_reason : PI0_WS_ERROR_REASON;
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code, (unsigned char *)reason, strlen(reason));
        return -1;
    }
    out_msg *m = c->out_head;
    if (!m) return 0;
    c->out_head = m->next;
    if (!c->out_head) { c->out_tail = NULL; s->n_with_output--; }
    int n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, m->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
    int kind = m->kind;
    size_t len = m->len;
    free(m);
    if (n < 0 || (size_t)n < len) return -1;
    double t = now_ms();
    if (kind == OUT_HELLO) {
        c->wait_start_ms = t;
    } else if (kind == OUT_REPLY) {
        c->prev_total_ms = t - c->wait_start_ms;   /* openpi: from waiting for the request to sent */
        c->wait_start_ms = t;
        lws_rx_flow_control(c->wsi, 1);
    }
    if (!c->out_head && c->close_code) c->close_now = 1;
    if (c->out_head || c->close_now) lws_callback_on_writable(c->wsi);   /* one write per callback */
    return 0;
}

static int on_http(struct lws *wsi, const char *uri) {
    uint8_t buf[LWS_PRE + 256], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    int ok = uri && strcmp(uri, "/healthz") == 0;
    if (!ok) {
        if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL)) return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/plain", 3, &p, end)) return -1;
    if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

// ---- network thread: connection list, capacity, keepalive ------------------------------------

static void conn_link(pi0_ws_server *s, conn *c) {
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    c->linked = 1;
}

static void conn_unlink(pi0_ws_server *s, conn *c) {
    if (!c->linked) return;
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->linked = 0;
    if (c->counted) { s->n_clients--; c->counted = 0; }
}

/* Every second: connections waiting on the worker are alive as far as we know (see the top). */
static void keepalive_cb(lws_sorted_usec_list_t *sul) {
    pi0_ws_server *s = lws_container_of(sul, pi0_ws_server, keepalive);
    for (conn *c = s->conns; c; c = c->next)
        if (c->job) lws_validity_confirmed(c->wsi);
    if (!atomic_load(&s->net_stop)) lws_sul_schedule(s->ctx, 0, &s->keepalive, keepalive_cb, LWS_US_PER_SEC);
}

/* A connection over max_clients: no metadata, close 1013 with the limit in the reason. */
static void refuse(pi0_ws_server *s, conn *c) {
    LOG(s, "conn %llu (%s): refused: %d clients connected (--max-clients %d)\n", (unsigned long long)c->id, c->peer,
        s->n_clients, s->o.max_clients);
    snprintf(c->close_reason, sizeof c->close_reason, "server full: %d clients connected (--max-clients %d); try again later",
             s->n_clients, s->o.max_clients);
    c->failed = 1;
    c->close_code = PI0_WS_CLOSE_TRY_AGAIN;
    c->close_now = 1;
    lws_rx_flow_control(c->wsi, 0);
    lws_callback_on_writable(c->wsi);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct lws_context *ctx = lws_get_context(wsi);
    pi0_ws_server *s = ctx ? lws_context_user(ctx) : NULL;
    conn *c = user;
    if (!s) return 0;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(wsi, in);
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        uint8_t body[LWS_PRE + 4];
        memcpy(body + LWS_PRE, "OK\n", 3);
        if (lws_write(wsi, body + LWS_PRE, 3, LWS_WRITE_HTTP_FINAL) != 3) return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        memset(c, 0, sizeof *c);
        c->wsi = wsi;
        c->is_ws = 1;
        c->id = ++s->next_conn_id;
        c->prev_total_ms = -1;
        lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
        if (s->draining) return -1;
        if (s->n_clients >= s->o.max_clients) {
            conn_link(s, c);
            refuse(s, c);
            return 0;
        }
        LOG(s, "conn %llu (%s): open\n", (unsigned long long)c->id, c->peer);
        c->wait_start_ms = now_ms();
        if (queue_out(s, c, OUT_HELLO, s->hello, s->o.hello_len)) return -1;
        conn_link(s, c);
        c->counted = 1;
        s->n_clients++;
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return c && c->is_ws ? on_receive(s, c, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c && c->is_ws ? on_writeable(s, c) : 0;
    case LWS_CALLBACK_CLOSED:
        if (c && c->is_ws) {
            LOG(s, "conn %llu (%s): closed\n", (unsigned long long)c->id, c->peer);
            conn_release(s, c);
            conn_unlink(s, c);
            c->is_ws = 0;
        }
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain_done(s);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    /* First entry: used for plain HTTP and for upgrades that name no subprotocol (openpi's client). */
    {"pi0-policy", callback, sizeof(conn), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

// ---- network thread ---------------------------------------------------------------------------

static void *net_main(void *arg) {
    pi0_ws_server *s = arg;
    while (!atomic_load(&s->net_stop)) lws_service(s->ctx, 0);
    /* Drain: new connections are refused; finished replies are delivered until the worker has
     * stopped and every queue is flushed, or 3 s have passed. pi0_ws_stop keeps waking us. */
    s->draining = 1;
    double deadline = now_ms() + 3000;
    while (now_ms() < deadline) {
        drain_done(s);
        pthread_mutex_lock(&s->mu);
        int done_empty = s->done_head == NULL;
        pthread_mutex_unlock(&s->mu);
        if (atomic_load(&s->worker_done) && done_empty && s->n_with_output == 0) break;
        lws_service(s->ctx, 0);
    }
    lws_sul_cancel(&s->keepalive);
    atomic_store(&s->net_done, 1);
    return NULL;
}

static void lws_log_to_stderr(int level, const char *line) {
    fprintf(stderr, "pi0 serve: libwebsockets %s: %s", level == LLL_ERR ? "error" : "warning", line);
}

int pi0_ws_start(const pi0_ws_opts *o, pi0_ws_server **out, char *err, size_t err_cap) {
    *out = NULL;
    pi0_ws_server *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, err_cap, "out of memory"); return -1; }
    s->o = *o;
    s->hello = malloc(o->hello_len ? o->hello_len : 1);
    if (!s->hello) { free(s); snprintf(err, err_cap, "out of memory"); return -1; }
    if (o->hello_len) memcpy(s->hello, o->hello, o->hello_len);
    s->o.hello = s->hello;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->worker_done, 0);
    atomic_init(&s->net_stop, 0);
    atomic_init(&s->net_done, 0);

    lws_set_log_level(LLL_ERR, lws_log_to_stderr);   /* lws warns on every malformed client frame */
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = o->port;
    /* lws treats iface as an interface name or an address; NULL binds every interface. */
    info.iface = (!o->host || !strcmp(o->host, "0.0.0.0")) ? NULL : o->host;
    info.protocols = protocols;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.user = s;
    /* IPv4 addresses bind as given; "::"-style hosts need IPv6 left on. */
    if (!o->host || !strchr(o->host, ':')) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.timeout_secs = 10;   /* HTTP handshake must complete within this */
    if (s->o.max_clients <= 0) s->o.max_clients = 64;
    if (s->o.ping_secs <= 0) s->o.ping_secs = 20;
    int ping = s->o.ping_secs > 30000 ? 30000 : s->o.ping_secs;
    s->idle_policy.secs_since_valid_ping = (uint16_t)ping;
    s->idle_policy.secs_since_valid_hangup = (uint16_t)(2 * ping);
    info.retry_and_idle_policy = &s->idle_policy;
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        snprintf(err, err_cap, "cannot listen on %s:%d (address in use or not available?)", o->host ? o->host : "*",
                 o->port);
        goto fail;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(s->ctx, "default");
    s->port = vh ? lws_get_vhost_listen_port(vh) : o->port;
    if (s->port <= 0) {
        snprintf(err, err_cap, "cannot listen on %s:%d", o->host ? o->host : "*", o->port);
        goto fail;
    }
    /* Scheduled before the network thread exists; from then on only that thread touches it. */
    lws_sul_schedule(s->ctx, 0, &s->keepalive, keepalive_cb, LWS_US_PER_SEC);
    if (pthread_create(&s->worker_thread, NULL, worker_main, s)) {
        snprintf(err, err_cap, "cannot start the worker thread");
        goto fail;
    }
    if (pthread_create(&s->net_thread, NULL, net_main, s)) {
        pthread_mutex_lock(&s->mu);
        s->worker_stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->worker_thread, NULL);
        snprintf(err, err_cap, "cannot start the network thread");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    lws_sul_cancel(&s->keepalive);   /* no-op if never scheduled */
    if (s->ctx) lws_context_destroy(s->ctx);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->hello);
    free(s);
    return -1;
}

int pi0_ws_port(const pi0_ws_server *s) { return s->port; }

void pi0_ws_stop(pi0_ws_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->worker_stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->net_stop, 1);
    while (!atomic_load(&s->net_done)) {   /* the net thread exits within its 3 s drain deadline */
        lws_cancel_service(s->ctx);
        usleep(20000);
    }
    pthread_join(s->net_thread, NULL);
    /* A request still running after the drain deadline is told to abort; its reply is dropped. */
    pthread_mutex_lock(&s->mu);
    if (s->running) atomic_store(&s->running->cancel, 1);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->worker_thread, NULL);
    lws_context_destroy(s->ctx);   /* closes the connections: CLOSED releases their jobs */
    drain_done(s);                 /* orphaned finished jobs */
    while (s->pend_head) {
        job *j = s->pend_head;
        s->pend_head = j->next;
        job_free(j);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->hello);
    free(s);
}
