/* ws_int.h - internals shared by ws.c (transport, request queue, lifecycle) and ws_limits.c
 * (resource limits: idle and slow clients, the buffer budget, file descriptors, oversized
 * headers, the bind address). Not for use outside tools/server/ws*.c. Threading rules are at the
 * top of ws.c: everything here is network-thread only unless marked "under mu". */
#ifndef PI0_SERVER_WS_INT_H
#define PI0_SERVER_WS_INT_H

#include <libwebsockets.h>
#include <pthread.h>

#include "ws.h"

enum { JOB_PENDING, JOB_RUNNING, JOB_DONE };
enum { OUT_HELLO, OUT_REPLY, OUT_ERROR };

typedef struct out_msg {
    struct out_msg *next;
    int kind;       /* OUT_HELLO, OUT_REPLY, OUT_ERROR (a text frame) */
    size_t len;
    uint8_t buf[];  /* LWS_PRE bytes of headroom, then len bytes */
} out_msg;

struct conn;
typedef struct job {
    struct job *next;
    struct conn *conn;     /* network thread only; NULL once the client is gone */
    int state;             /* under mu */
    uint8_t *data;
    size_t acct;           /* bytes of data counted in the buffer budget */
    pi0_ws_request req;
    atomic_int cancel;
    pi0_ws_reply rep;
} job;

typedef struct conn {      /* libwebsockets per-session data (zeroed by lws) */
    struct lws *wsi;
    uint64_t id;
    int is_ws;             /* ESTABLISHED seen */
    uint8_t *rx;           /* message being assembled (or held, see `held`) */
    size_t rx_len, rx_cap;
    size_t rx_acct;        /* bytes of rx counted in the buffer budget */
    int rx_binary;
    double rx_start_ms;    /* when the first byte of the message in progress arrived */
    int held;              /* rx is a complete message that waits for the running one (reading paused) */
    int failed;            /* an error or close is queued: ignore further input */
    int served;            /* at least one reply sent (the idle timeout no longer applies) */
    job *job;              /* queued or running request, or NULL */
    out_msg *out_head, *out_tail;
    int close_code;        /* after the queue is flushed: close with this code */
    int close_now;
    double open_ms;        /* ESTABLISHED time */
    double wait_start_ms;  /* when the server started waiting for the next request */
    double prev_total_ms;  /* -1 until the first reply has been sent */
    int counted;           /* counts towards max_clients (not a refused connection) */
    int linked;            /* in the server's connection list */
    struct conn *prev, *next;
    char close_reason[124];/* reason sent with close_code ("" = openpi's error reason) */
    char peer[64];
} conn;

struct pi0_ws_server {
    pi0_ws_opts o;                /* with defaults filled in */
    uint8_t *hello;
    struct lws_context *ctx;
    int port;
    char bind_addr[64];           /* numeric address given to lws ("" = every interface) */
    pthread_t net_thread, worker_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *pend_head, *pend_tail;   /* under mu */
    int n_pending;                /* under mu */
    job *done_head, *done_tail;   /* under mu */
    job *running;                 /* under mu */
    int worker_stop;              /* under mu */
    atomic_int worker_done, net_stop, net_done;
    uint64_t next_conn_id;
    int n_with_output;            /* connections with queued messages */
    int draining;
    int n_clients;                /* counted WebSocket connections */
    conn *conns;                  /* every linked connection */
    size_t buf_used;              /* bytes of buffered requests (rx buffers and jobs' data) */
    struct { uint64_t served, failed, cancelled, dropped, refused_busy, refused_full, evicted; } stats;
    /* Sockets (ws_limits.c): every accepted connection until lws destroys it, and those still
     * before their HTTP request or upgrade, oldest first (evicted when descriptors run short). */
    unsigned fd_limit;            /* lws' connection table (fd_limit_per_thread) */
    int n_socks;
    struct pre_sock { struct lws *wsi; double t; } *pre;
    int n_pre;
    lws_retry_bo_t idle_policy;   /* ping / hang-up times */
    lws_sorted_usec_list_t sweep; /* the 1 s timer of ws_limits.c */
};

#define WS_LOG(s, ...) do { if ((s)->o.verbose) fprintf(stderr, "pi0 serve: " __VA_ARGS__); } while (0)

double pi0_ws_now_ms(void);

/* ws.c */
/* Queue a text message (msg may be NULL: none), then close with `code` and `reason` (NULL =
 * openpi's error reason). Stops reading. */
void pi0_ws_fail(pi0_ws_server *s, conn *c, int code, const char *reason, const char *msg);

/* ws_limits.c */
/* Fill the defaults of the limits in s->o and the lws context options derived from them.
 * Returns 0, or -1 with a message in err. */
int pi0_ws_limits_init(pi0_ws_server *s, struct lws_context_creation_info *info, char *err, size_t err_cap);
/* Start the 1 s sweep (keepalive of waiting clients, idle timeout, minimum data rate). */
void pi0_ws_sweep_start(pi0_ws_server *s);
/* Grow the budget use by `add` bytes; -1 (nothing changed) if that would pass max_buffer_bytes. */
int pi0_ws_budget_take(pi0_ws_server *s, size_t add);
void pi0_ws_budget_give(pi0_ws_server *s, size_t n);
/* Socket bookkeeping, from the lws callbacks: a connection accepted (SERVER_NEW_CLIENT_INSTANTIATED),
 * past its request headers (HTTP or ESTABLISHED), destroyed (WSI_DESTROY). */
void pi0_ws_sock_open(pi0_ws_server *s, struct lws *wsi);
void pi0_ws_sock_ready(pi0_ws_server *s, struct lws *wsi);
void pi0_ws_sock_gone(pi0_ws_server *s, struct lws *wsi);
/* Free what pi0_ws_limits_init allocated. */
void pi0_ws_limits_free(pi0_ws_server *s);
/* libwebsockets log sink (set for LLL_ERR): prints errors, answers 431 to a request whose headers
 * overflowed lws' buffer (lws itself closes it without a reply; see ws_limits.c). */
void pi0_ws_lws_log(int level, const char *line);

#endif
