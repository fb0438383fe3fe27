/* ws.c - WebSocket/HTTP transport and the request queue of the policy server (contract in ws.h;
 * the limits are in ws_limits.c).
 *
 * Threads: the network thread runs libwebsockets' service loop and is the only one that touches
 * a `conn` or calls lws_* (except lws_cancel_service, which lws documents as thread-safe). The
 * worker thread pops jobs in FIFO order, calls the handler and pushes the job to the done list,
 * then wakes the network thread with lws_cancel_service; the network thread turns finished jobs
 * into messages (LWS_CALLBACK_EVENT_WAIT_CANCELLED). The mutex guards the two lists and job->state.
 * A job outlives its connection if the client leaves mid-request: CLOSED unlinks a pending job
 * (never run) or marks a running one cancelled and orphaned, and the done-list drain frees it.
 *
 * Connections are read all the time, also while their request waits or runs: that is how a
 * close frame or FIN cancels the request. A second message that arrives meanwhile is held in
 * conn.rx and reading pauses (rx flow control) until the reply has been sent.
 *
 * Liveness uses libwebsockets' validity timer (retry_and_idle_policy: PING after ping_secs without
 * proof of life, hang up after 2 * ping_secs). A received message counts as proof of life; the 1 s
 * sweep of ws_limits.c confirms connections whose request is queued or running. */
#include "ws_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double pi0_ws_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#define LOG WS_LOG

static void job_free(pi0_ws_server *s, job *j) {
    if (!j) return;
    pi0_ws_budget_give(s, j->acct);
    free(j->data);
    free(j->rep.data);
    free(j->rep.err);
    free(j);
}

static void rx_free(pi0_ws_server *s, conn *c) {
    pi0_ws_budget_give(s, c->rx_acct);
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = c->rx_acct = 0;
    c->held = 0;
}

// ---- worker thread ---------------------------------------------------------------------------

static void *worker_main(void *arg) {
    pi0_ws_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->pend_head && !s->worker_stop) pthread_cond_wait(&s->cv, &s->mu);
        if (s->worker_stop) {   /* stop: queued jobs are dropped by the network thread */
            pthread_mutex_unlock(&s->mu);
            break;
        }
        job *j = s->pend_head;
        s->pend_head = j->next;
        if (!s->pend_head) s->pend_tail = NULL;
        s->n_pending--;
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
    m->len = len;
    if (len) memcpy(m->buf + LWS_PRE, data, len);
    if (!c->out_head) s->n_with_output++;
    if (c->out_tail) c->out_tail->next = m; else c->out_head = m;
    c->out_tail = m;
    lws_callback_on_writable(c->wsi);
    return 0;
}

void pi0_ws_fail(pi0_ws_server *s, conn *c, int code, const char *reason, const char *msg) {
    if (msg) LOG(s, "conn %llu (%s): error: %s\n", (unsigned long long)c->id, c->peer, msg);
    c->failed = 1;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason ? reason : "");
    lws_rx_flow_control(c->wsi, 0);
    if (!msg || queue_out(s, c, OUT_ERROR, msg, strlen(msg))) c->close_now = !c->out_head;
    lws_callback_on_writable(c->wsi);
}

/* Queue an error text message, then close with 1011 and openpi's reason. Stops reading. */
static void fail_conn(pi0_ws_server *s, conn *c, const char *msg) {
    pi0_ws_fail(s, c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, NULL, msg);
}

/* Take a pending job off the queue (network thread; returns 0 if it was not pending). */
static int unqueue(pi0_ws_server *s, job *j) {
    pthread_mutex_lock(&s->mu);
    int pending = j->state == JOB_PENDING;
    if (pending) {
        job **pp = &s->pend_head, *prev = NULL;
        while (*pp && *pp != j) { prev = *pp; pp = &(*pp)->next; }
        if (*pp) { *pp = j->next; if (s->pend_tail == j) s->pend_tail = prev; s->n_pending--; }
    }
    pthread_mutex_unlock(&s->mu);
    return pending;
}

static void conn_release(pi0_ws_server *s, conn *c) {
    if (c->job) {
        job *j = c->job;
        if (unqueue(s, j)) {             /* never started: drop it */
            LOG(s, "conn %llu (%s): client left; its queued request is dropped\n", (unsigned long long)c->id, c->peer);
            s->stats.dropped++;
            job_free(s, j);
        } else {                         /* running or done: the done-list drain frees it */
            pthread_mutex_lock(&s->mu);
            j->conn = NULL;
            if (j->state == JOB_RUNNING) {
                atomic_store(&j->cancel, 1);
                LOG(s, "conn %llu (%s): client left; its running request is cancelled\n", (unsigned long long)c->id,
                    c->peer);
            }
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
    rx_free(s, c);
}

static void submit(pi0_ws_server *s, conn *c);

/* Turn finished jobs into messages on their connections. */
static void drain_done(pi0_ws_server *s) {
    pthread_mutex_lock(&s->mu);
    job *j = s->done_head;
    s->done_head = s->done_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    /* Stopping (set before the running job is cancelled, so its abort is reported as the shutdown). */
    int stopping = s->draining || atomic_load(&s->net_stop);
    while (j) {
        job *next = j->next;
        conn *c = j->conn;
        if (!j->rep.err) s->stats.served++;
        else if (atomic_load(&j->cancel)) s->stats.cancelled++;
        else s->stats.failed++;
        if (c) {
            c->job = NULL;
            if (stopping && j->rep.err) {
                pi0_ws_fail(s, c, PI0_WS_CLOSE_GOING_AWAY, "server shutting down",
                            "server shutting down: the request was cancelled; retry with another server");
            } else if (j->rep.err) {
                fail_conn(s, c, j->rep.err);
            } else {
                LOG(s, "conn %llu (%s): reply %zu bytes\n", (unsigned long long)c->id, c->peer, j->rep.len);
                if (queue_out(s, c, OUT_REPLY, j->rep.data, j->rep.len)) fail_conn(s, c, "out of memory for the reply");
                else if (stopping) {   /* the last reply: then close (a held request is dropped) */
                    rx_free(s, c);
                    pi0_ws_fail(s, c, PI0_WS_CLOSE_GOING_AWAY, "server shutting down", NULL);
                }
            }
        }
        job_free(s, j);
        j = next;
    }
}

static void submit(pi0_ws_server *s, conn *c) {
    pthread_mutex_lock(&s->mu);
    int ahead = s->n_pending + (s->running != NULL);
    pthread_mutex_unlock(&s->mu);
    if (s->o.max_queue >= 0 && ahead > s->o.max_queue) {
        char msg[200];
        snprintf(msg, sizeof msg, "server busy: %d request%s queued or running (--max-queue %d); try again later "
                 "or another replica", ahead, ahead == 1 ? "" : "s", s->o.max_queue);
        rx_free(s, c);
        s->stats.refused_busy++;
        pi0_ws_fail(s, c, PI0_WS_CLOSE_TRY_AGAIN, "server busy (--max-queue); try again later", msg);
        return;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) { fail_conn(s, c, "out of memory for the request"); return; }
    j->conn = c;
    j->data = c->rx;
    j->acct = c->rx_acct;
    j->req.data = c->rx ? c->rx : (const uint8_t *)"";
    j->req.len = c->rx_len;
    j->req.binary = c->rx_binary;
    j->req.prev_total_ms = c->prev_total_ms;
    j->req.conn_id = c->id;
    atomic_init(&j->cancel, 0);
    j->req.cancel = &j->cancel;
    c->rx = NULL;
    c->rx_len = c->rx_cap = c->rx_acct = 0;
    c->held = 0;
    c->job = j;
    LOG(s, "conn %llu (%s): request %zu bytes\n", (unsigned long long)c->id, c->peer, j->req.len);
    pthread_mutex_lock(&s->mu);
    j->state = JOB_PENDING;
    if (s->pend_tail) s->pend_tail->next = j; else s->pend_head = j;
    s->pend_tail = j;
    s->n_pending++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int on_receive(pi0_ws_server *s, conn *c, const uint8_t *in, size_t len) {
    if (c->failed) return 0;
    lws_validity_confirmed(c->wsi);   /* the peer is alive: restart the ping / hang-up clock */
    if (c->held) {   /* reading is paused while a message is held; lws may still hand us buffered bytes */
        fail_conn(s, c, "a third request was sent before the reply to the first one");
        return 0;
    }
    size_t max = s->o.max_frame_bytes;
    if (lws_is_first_fragment(c->wsi)) {
        c->rx_len = 0;
        c->rx_binary = lws_frame_is_binary(c->wsi);
    }
    if (c->rx_len == 0) c->rx_start_ms = pi0_ws_now_ms();
    size_t rem = lws_remaining_packet_payload(c->wsi);   /* rest of this frame, from its header */
    if (len > max || rem > max || c->rx_len > max - len || c->rx_len + len > max - rem) {
        char msg[160];
        snprintf(msg, sizeof msg, "message too large: at least %llu bytes, the limit is %zu bytes (--max-frame-mib)",
                 (unsigned long long)c->rx_len + len + rem, max);
        rx_free(s, c);
        fail_conn(s, c, msg);
        return 0;
    }
    size_t need = c->rx_len + len + rem;
    if (need > c->rx_cap) {
        /* The frame's declared size is known and within the limit: allocate it. Later frames of
         * a fragmented message grow the buffer geometrically, still capped at max. */
        size_t cap = c->rx_cap * 2 > need ? c->rx_cap * 2 : need;
        if (cap > max) cap = max;
        if (pi0_ws_budget_take(s, cap - c->rx_cap)) {
            char msg[240];
            snprintf(msg, sizeof msg, "server busy: buffered requests use %zu of %zu bytes (--max-buffer-mib); this "
                     "message needs %zu more; try again later", s->buf_used, s->o.max_buffer_bytes, cap - c->rx_cap);
            rx_free(s, c);
            s->stats.refused_busy++;
            pi0_ws_fail(s, c, PI0_WS_CLOSE_TRY_AGAIN, "server busy (--max-buffer-mib); try again later", msg);
            return 0;
        }
        c->rx_acct += cap - c->rx_cap;
        uint8_t *p = realloc(c->rx, cap ? cap : 1);
        if (!p) { rx_free(s, c); fail_conn(s, c, "out of memory for the request"); return 0; }
        c->rx = p;
        c->rx_cap = cap;
    }
    if (len) memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (lws_is_final_fragment(c->wsi) && rem == 0) {
        if (c->job) {           /* wait for the reply to the running one; stop reading meanwhile */
            c->held = 1;
            lws_rx_flow_control(c->wsi, 0);
        } else {
            submit(s, c);
        }
    }
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
    int n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, m->kind == OUT_ERROR ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
    int kind = m->kind;
    size_t len = m->len;
    free(m);
    if (n < 0 || (size_t)n < len) return -1;
    double t = pi0_ws_now_ms();
    if (kind == OUT_HELLO) {
        c->wait_start_ms = t;
    } else if (kind == OUT_REPLY) {
        c->prev_total_ms = t - c->wait_start_ms;   /* openpi: from waiting for the request to sent */
        c->wait_start_ms = t;
        c->served = 1;
        if (c->held && !c->failed) {
            lws_rx_flow_control(c->wsi, 1);
            submit(s, c);
        }
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

// ---- network thread: connection list, capacity ------------------------------------------------

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

/* A connection over max_clients: no metadata, close 1013 with the limit in the reason. */
static void refuse(pi0_ws_server *s, conn *c) {
    LOG(s, "conn %llu (%s): refused: %d clients connected (--max-clients %d)\n", (unsigned long long)c->id, c->peer,
        s->n_clients, s->o.max_clients);
    char reason[124];
    snprintf(reason, sizeof reason, "server full: %d clients connected (--max-clients %d); try again later",
             s->n_clients, s->o.max_clients);
    s->stats.refused_full++;
    pi0_ws_fail(s, c, PI0_WS_CLOSE_TRY_AGAIN, reason, NULL);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct lws_context *ctx = lws_get_context(wsi);
    pi0_ws_server *s = ctx ? lws_context_user(ctx) : NULL;
    conn *c = user;
    if (!s) return 0;
    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        pi0_ws_sock_open(s, wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        pi0_ws_sock_gone(s, wsi);
        return 0;
    case LWS_CALLBACK_HTTP:
        pi0_ws_sock_ready(s, wsi);
        return on_http(wsi, in);
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        uint8_t body[LWS_PRE + 4];
        memcpy(body + LWS_PRE, "OK\n", 3);
        if (lws_write(wsi, body + LWS_PRE, 3, LWS_WRITE_HTTP_FINAL) != 3) return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        pi0_ws_sock_ready(s, wsi);
        memset(c, 0, sizeof *c);
        c->wsi = wsi;
        c->is_ws = 1;
        c->id = ++s->next_conn_id;
        c->prev_total_ms = -1;
        c->open_ms = pi0_ws_now_ms();
        lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
        if (s->draining) return -1;
        if (s->n_clients >= s->o.max_clients) {
            conn_link(s, c);
            refuse(s, c);
            return 0;
        }
        LOG(s, "conn %llu (%s): open\n", (unsigned long long)c->id, c->peer);
        c->wait_start_ms = c->open_ms;
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

/* Shutdown, first pass: drop queued requests and close idle connections with 1001. Connections
 * with a running (cancelled) request are closed when it comes back (drain_done). */
static void close_all(pi0_ws_server *s) {
    for (conn *c = s->conns; c; c = c->next) {
        if (c->failed) continue;
        if (c->job && unqueue(s, c->job)) {
            s->stats.dropped++;
            job_free(s, c->job);
            c->job = NULL;
            pi0_ws_fail(s, c, PI0_WS_CLOSE_GOING_AWAY, "server shutting down",
                        "server shutting down: the request was dropped before it ran; retry with another server");
        } else if (!c->job) {
            pi0_ws_fail(s, c, PI0_WS_CLOSE_GOING_AWAY, "server shutting down", NULL);
        }
    }
}

static void *net_main(void *arg) {
    pi0_ws_server *s = arg;
    while (!atomic_load(&s->net_stop)) lws_service(s->ctx, 0);
    /* Drain: new connections are refused; replies already made are delivered and every connection
     * is closed, until all are gone or drain_ms have passed. pi0_ws_stop keeps waking us. */
    s->draining = 1;
    double deadline = pi0_ws_now_ms() + s->o.drain_ms;
    close_all(s);
    while (pi0_ws_now_ms() < deadline) {
        drain_done(s);
        pthread_mutex_lock(&s->mu);
        int done_empty = s->done_head == NULL;
        pthread_mutex_unlock(&s->mu);
        if (atomic_load(&s->worker_done) && done_empty && s->n_with_output == 0 && !s->conns) break;
        lws_service(s->ctx, 0);
    }
    lws_sul_cancel(&s->sweep);
    atomic_store(&s->net_done, 1);
    return NULL;
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

    lws_set_log_level(LLL_ERR, pi0_ws_lws_log);   /* lws warns on every malformed client frame */
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = o->port;
    info.protocols = protocols;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.user = s;
    info.timeout_secs = 10;   /* HTTP handshake must complete within this */
    if (s->o.max_clients <= 0) s->o.max_clients = 64;
    if (s->o.ping_secs <= 0) s->o.ping_secs = 20;
    if (s->o.drain_ms <= 0) s->o.drain_ms = 3000;
    int ping = s->o.ping_secs > 30000 ? 30000 : s->o.ping_secs;
    s->idle_policy.secs_since_valid_ping = (uint16_t)ping;
    s->idle_policy.secs_since_valid_hangup = (uint16_t)(2 * ping);
    info.retry_and_idle_policy = &s->idle_policy;
    if (pi0_ws_limits_init(s, &info, err, err_cap)) goto fail;
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
    pi0_ws_sweep_start(s);
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
    lws_sul_cancel(&s->sweep);   /* no-op if never scheduled */
    if (s->ctx) lws_context_destroy(s->ctx);
    pi0_ws_limits_free(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->hello);
    free(s);
    return -1;
}

int pi0_ws_port(const pi0_ws_server *s) { return s->port; }

int pi0_ws_stop(pi0_ws_server *s) {
    if (!s) return 0;
    atomic_store(&s->net_stop, 1);
    pthread_mutex_lock(&s->mu);
    s->worker_stop = 1;
    if (s->running) atomic_store(&s->running->cancel, 1);   /* cancel at once; its client is told */
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    while (!atomic_load(&s->net_done)) {   /* the net thread exits within drain_ms */
        lws_cancel_service(s->ctx);
        usleep(20000);
    }
    pthread_join(s->net_thread, NULL);
    /* The worker checks its cancel flag between ops; give it 2 s more, then give up on it. */
    for (int i = 0; i < 100 && !atomic_load(&s->worker_done); i++) usleep(20000);
    if (!atomic_load(&s->worker_done)) {
        fprintf(stderr, "pi0 serve: the running request did not stop within the drain time\n");
        return -1;
    }
    pthread_join(s->worker_thread, NULL);
    lws_context_destroy(s->ctx);   /* closes the connections: CLOSED releases their jobs */
    drain_done(s);                 /* orphaned finished jobs */
    while (s->pend_head) {
        job *j = s->pend_head;
        s->pend_head = j->next;
        job_free(s, j);
    }
    if (s->o.verbose)
        fprintf(stderr, "pi0 serve: stopped: %llu replies, %llu errors, %llu cancelled while running, %llu dropped "
                "before running, %llu refused busy, %llu refused full, %llu closed by limits\n",
                (unsigned long long)s->stats.served, (unsigned long long)s->stats.failed,
                (unsigned long long)s->stats.cancelled, (unsigned long long)s->stats.dropped,
                (unsigned long long)s->stats.refused_busy, (unsigned long long)s->stats.refused_full,
                (unsigned long long)s->stats.evicted);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pi0_ws_limits_free(s);
    free(s->hello);
    free(s);
    return 0;
}
