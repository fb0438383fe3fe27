/* ws.h - the policy server's transport: a WebSocket + HTTP listener (libwebsockets) with one
 * worker thread that handles requests one at a time, in arrival order.
 *
 * Lifecycle (civetweb's mg_start/mg_stop): pi0_ws_start binds and starts two threads, the network
 * thread (libwebsockets service loop: accept, HTTP, frames, pings, writes) and the worker thread
 * (calls `handle`). pi0_ws_stop lets the running request finish, delivers the replies already
 * made, closes every connection and returns when both threads have ended.
 *
 * Per connection (PI0_IO.md §4): on connect the `hello` bytes go out as one binary message; then
 * each complete client message (binary or text) becomes one call of `handle`, whose reply goes
 * back as one binary message, or, on error, as one text message followed by close code 1011 with
 * openpi's reason. While a request is queued or running, that connection is not read (TCP flow
 * control), so requests on one connection are strictly sequential and a client cannot queue more
 * than one. Messages larger than max_frame_bytes are refused before buffering (text error, close
 * 1009). GET /healthz answers "OK\n"; other plain HTTP requests get 404. Pings are answered; no
 * extension (so no permessage-deflate) is offered.
 *
 * Liveness: a connection that shows no sign of life for ping_secs gets a PING; if nothing (no
 * PONG, no message) arrives for 2 * ping_secs in all, it is closed (openpi's websockets server
 * pings every 20 s and gives up 20 s later). A connection whose request is queued or running is
 * never dropped for silence: its socket is not being read, through no fault of the client.
 *
 * Capacity: at most max_clients WebSocket connections are served at once. One more completes the
 * handshake, receives no metadata, and is closed at once with code 1013 (Try Again Later) and a
 * reason naming the limit, which openpi's client raises as ConnectionClosedError.
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
} pi0_ws_opts;

typedef struct pi0_ws_server pi0_ws_server;

/* Bind and start. Returns 0, or -1 with a message in err (nothing left running). */
int pi0_ws_start(const pi0_ws_opts *o, pi0_ws_server **out, char *err, size_t err_cap);
/* The port actually bound. */
int pi0_ws_port(const pi0_ws_server *s);
/* Drain and stop (see the top of this file); frees s. NULL is a no-op. */
void pi0_ws_stop(pi0_ws_server *s);

/* The reason string openpi sends with close code 1011. */
#define PI0_WS_ERROR_REASON "Internal server error. Traceback included in previous frame."
/* Close code for a connection refused because max_clients are connected (RFC 6455 §7.4.1). */
#define PI0_WS_CLOSE_TRY_AGAIN 1013

#endif
