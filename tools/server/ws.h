/* ws.h - the policy server's transport: a WebSocket + HTTP listener (libwebsockets) with one
 * worker thread that handles requests one at a time, in arrival order.
 *
 * Lifecycle (civetweb's mg_start/mg_stop): pi0_ws_start binds and starts two threads, the network
 * thread (libwebsockets service loop: accept, HTTP, frames, pings, writes) and the worker thread
 * (calls `handle`). pi0_ws_stop cancels the running request, drops queued ones (their clients get
 * a text message and close 1001), delivers replies already made, closes every connection with
 * 1001 (Going Away) and returns when both threads have ended, within drain_ms plus 2 s.
 *
 * Per connection (PI0_IO.md §4): on connect the `hello` bytes go out as one binary message; then
 * each complete client message (binary or text) becomes one call of `handle`, whose reply goes
 * back as one binary message, or, on error, as one text message followed by close code 1011 with
 * openpi's reason. Requests on one connection are strictly sequential: a message that arrives
 * while the connection's request is queued or running is held (reading pauses) until the reply is
 * sent, so a client cannot queue more than one. Messages larger than max_frame_bytes are refused
 * before buffering (text error, close 1011). GET /healthz answers "OK\n"; other plain HTTP
 * requests get 404; request headers up to 24 KiB are accepted, larger ones get 431. Pings are
 * answered; no extension (so no permessage-deflate) is offered.
 *
 * Cancellation: the network thread keeps reading a connection while its request waits or runs, so
 * a close frame, a FIN or a reset is seen at once: a queued request is dropped without running, a
 * running one has req->cancel set (pi0 serve passes it to the library's abort callback, checked
 * between ops).
 *
 * Liveness: a connection that shows no sign of life for ping_secs gets a PING; if nothing (no
 * PONG, no message) arrives for 2 * ping_secs in all, it is closed (openpi's websockets server
 * pings every 20 s and gives up 20 s later). A connection whose request is queued or running is
 * never dropped for silence.
 *
 * Limits (each refusal is a text message naming the limit, then a close code):
 * - max_clients WebSocket connections at once; one more completes the handshake, receives no
 *   metadata, and is closed with 1013 (Try Again Later) and a reason naming the limit, which
 *   openpi's client raises as ConnectionClosedError;
 * - max_queue: a request that would wait behind more than max_queue others is refused with 1013;
 * - idle_secs: a connection that has sent no complete request that long after connecting is
 *   closed with 1008 (Policy Violation); after its first reply it may idle (robots pause);
 * - min_rate: a message in progress must average min_rate bytes/s once 5 s have passed (1008);
 * - max_buffer_bytes: all buffered requests (messages being received, queued and running) share
 *   this budget; a message that would pass it is refused with 1013;
 * - file descriptors: accepting pauses while the fd limit (ulimit -n) is nearly used up, instead
 *   of spinning on EMFILE (waiting connections stay in the kernel's listen backlog), and before
 *   that point the oldest connection that has not sent its request headers is closed to make room.
 *
 * The network thread never calls `handle` and never blocks on the worker, so slow or silent
 * clients only hold their own socket. Callers should ignore SIGPIPE (the server writes to
 * sockets that peers may have closed); pi0 serve does. */
#ifndef PI0_SERVER_WS_H
#define PI0_SERVER_WS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* One request as the worker sees it. */
typedef struct {
    const uint8_t *data;
    size_t len;
    int binary;              /* 0: the client sent a text message */
    double prev_total_ms;    /* the connection's previous request-to-reply cycle; < 0 on the first */
    uint64_t conn_id;        /* for log lines */
    const atomic_int *cancel;/* becomes non-zero if the client disconnects meanwhile */
} pi0_ws_request;

/* What the worker hands back: either data (binary reply) or err (text message + close 1011).
 * Both are malloc'd; the transport frees them. */
typedef struct {
    uint8_t *data;
    size_t len;
    char *err;
} pi0_ws_reply;

typedef int (*pi0_ws_handler)(void *user, const pi0_ws_request *req, pi0_ws_reply *rep);

typedef struct {
    const char *host;        /* address to bind, e.g. "127.0.0.1" or "0.0.0.0" */
    int port;                /* 0 = let the kernel choose (see pi0_ws_port) */
    size_t max_frame_bytes;  /* largest accepted message */
    const uint8_t *hello;    /* sent on connect (copied) */
    size_t hello_len;
    pi0_ws_handler handle;   /* runs on the worker thread */
    void *user;
    int verbose;             /* 1: log each connection and request on stderr */
    int max_clients;         /* WebSocket connections served at once; <= 0: 64 */
    int ping_secs;           /* idle seconds before a PING; hang up after twice that; <= 0: 20 */
    int max_queue;           /* requests that may wait behind the running one; < 0: no limit
                                (0 refuses any request while one runs: set it explicitly) */
    int idle_secs;           /* before the first request; <= 0: 60 */
    long min_rate;           /* bytes/s of a message in progress; 0: 16 KiB/s; < 0: no minimum */
    size_t max_buffer_bytes; /* all buffered requests; 0: 1/8 of the RAM, at least 2 frames */
    int drain_ms;            /* pi0_ws_stop's time to flush replies and closes; <= 0: 3000 */
} pi0_ws_opts;

typedef struct pi0_ws_server pi0_ws_server;

/* Bind and start. Returns 0, or -1 with a message in err (nothing left running). */
int pi0_ws_start(const pi0_ws_opts *o, pi0_ws_server **out, char *err, size_t err_cap);
/* The port actually bound. */
int pi0_ws_port(const pi0_ws_server *s);
/* Drain and stop (see the top of this file); frees s and returns 0. NULL is a no-op. Returns -1
 * (s not freed, the worker still inside `handle`) if the running request ignored its cancel flag
 * for 2 s past the drain: the caller should then exit the process. */
int pi0_ws_stop(pi0_ws_server *s);
/* Numeric address for `host` (an IPv4/IPv6 literal or a host name, resolved with getaddrinfo;
 * IPv4 preferred); "" for NULL or "0.0.0.0" (every interface). Returns 0, or -1 with err set. */
int pi0_ws_resolve(const char *host, char *addr, size_t addr_cap, char *err, size_t err_cap);
/* 1 if the numeric address is a loopback one (127.0.0.0/8, ::1). */
int pi0_ws_is_loopback(const char *addr);

/* The reason string openpi sends with close code 1011. */
#define PI0_WS_ERROR_REASON "Internal server error. Traceback included in previous frame."
/* Close codes (RFC 6455 §7.4.1): server full or busy (max_clients, max_queue, buffer budget);
 * a client that broke a limit (idle, too slow); the server is shutting down. */
#define PI0_WS_CLOSE_TRY_AGAIN 1013
#define PI0_WS_CLOSE_POLICY 1008
#define PI0_WS_CLOSE_GOING_AWAY 1001
/* Request headers accepted on the upgrade or HTTP request (libwebsockets' header buffer). */
#define PI0_WS_MAX_HEADER_BYTES 24576

#endif
