/* ws_limits.c - the resource limits of the policy server's transport (contract in ws.h, "Limits"):
 * the bind address, the buffer budget, the 1 s sweep (keepalive of waiting clients, idle timeout,
 * minimum data rate), the file-descriptor ceiling and the 431 reply for oversized headers.
 * Network-thread only, like the rest of ws.c, except pi0_ws_limits_init (before the threads). */
#include "ws_int.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define RATE_GRACE_MS 5000.0       /* a message may start slowly for this long */
#define FD_RESERVE 16              /* descriptors kept for everything that is not a connection */
#define FD_MAX_CONNS 16384         /* libwebsockets' table size past which lookups get slow */

// ---- bind address ------------------------------------------------------------------------------

int pi0_ws_is_loopback(const char *addr) {
    unsigned char b[16];
    if (inet_pton(AF_INET, addr, b) == 1) return b[0] == 127;
    if (inet_pton(AF_INET6, addr, b) == 1) {
        static const unsigned char v6lo[16] = {[15] = 1};
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        return !memcmp(b, v6lo, 16) || (!memcmp(b, mapped, 12) && b[12] == 127);
    }
    return 0;
}

int pi0_ws_resolve(const char *host, char *addr, size_t addr_cap, char *err, size_t err_cap) {
    addr[0] = 0;
    if (!host || !*host || !strcmp(host, "0.0.0.0")) return 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc) {
        snprintf(err, err_cap, "--host %s: cannot resolve: %s", host, gai_strerror(rc));
        return -1;
    }
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; a; a = a->ai_next)   /* IPv4 first: lws binds it as given */
        if (a->ai_family == AF_INET || (a->ai_family == AF_INET6 && !pick)) {
            pick = a;
            if (a->ai_family == AF_INET) break;
        }
    const void *sa = NULL;
    if (pick && pick->ai_family == AF_INET) sa = &((const struct sockaddr_in *)pick->ai_addr)->sin_addr;
    if (pick && pick->ai_family == AF_INET6) sa = &((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
    int ok = sa && inet_ntop(pick->ai_family, sa, addr, (socklen_t)addr_cap);
    freeaddrinfo(res);
    if (!ok) {
        snprintf(err, err_cap, "--host %s: no IPv4 or IPv6 address", host);
        return -1;
    }
    return 0;
}

// ---- setup ---------------------------------------------------------------------------------------

int pi0_ws_limits_init(pi0_ws_server *s, struct lws_context_creation_info *info, char *err, size_t err_cap) {
    pi0_ws_opts *o = &s->o;
    if (pi0_ws_resolve(o->host, s->bind_addr, sizeof s->bind_addr, err, err_cap)) return -1;
    /* lws treats iface as an interface name or a numeric address; NULL binds every interface. */
    info->iface = s->bind_addr[0] ? s->bind_addr : NULL;
    if (!strchr(s->bind_addr, ':')) info->options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info->max_http_header_data = PI0_WS_MAX_HEADER_BYTES;

    if (o->idle_secs <= 0) o->idle_secs = 60;
    if (o->min_rate == 0) o->min_rate = 16384;
    if (o->max_buffer_bytes == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        size_t ram = pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz : (size_t)4 << 30;
        o->max_buffer_bytes = ram / 8;
        if (o->max_buffer_bytes < 2 * o->max_frame_bytes) o->max_buffer_bytes = 2 * o->max_frame_bytes;
    }
    if (o->max_buffer_bytes < o->max_frame_bytes) {
        snprintf(err, err_cap, "the request buffer budget (%zu bytes) is smaller than one message (%zu bytes)",
                 o->max_buffer_bytes, o->max_frame_bytes);
        return -1;
    }

    /* libwebsockets stops polling the listening socket when its table is one short of
     * fd_limit_per_thread, and resumes when a connection closes (accept backoff). By default that
     * table is `ulimit -n` big, but stdio and friends hold descriptors too, so accept() would fail
     * with EMFILE first and lws would retry it in a busy loop. Keep FD_RESERVE spare. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t lim = rl.rlim_cur;
        if (lim != RLIM_INFINITY && lim < FD_RESERVE + 8) {
            snprintf(err, err_cap, "ulimit -n %llu is too low for a server (need at least %d)", (unsigned long long)lim,
                     FD_RESERVE + 8);
            return -1;
        }
        rlim_t n = lim == RLIM_INFINITY || lim - FD_RESERVE > FD_MAX_CONNS ? FD_MAX_CONNS : lim - FD_RESERVE;
        info->fd_limit_per_thread = (unsigned int)n;
    }
    s->fd_limit = info->fd_limit_per_thread ? info->fd_limit_per_thread : FD_MAX_CONNS;
    s->pre = calloc(s->fd_limit, sizeof *s->pre);
    if (!s->pre) {
        snprintf(err, err_cap, "out of memory");
        return -1;
    }
    return 0;
}

void pi0_ws_limits_free(pi0_ws_server *s) {
    free(s->pre);
    s->pre = NULL;
}

// ---- sockets before their request ---------------------------------------------------------------

/* A flood of TCP connections that never send a request would fill lws' table until its handshake
 * timeout (10 s) frees them, and accepting stays paused meanwhile (a good client waits in the
 * backlog). So when the table is nearly full, the oldest connection still before its request
 * headers is closed: a client that completes its handshake promptly always gets in. */
static const char sock_marker;   /* opaque user data of the connections counted in n_socks */

static void pre_remove(pi0_ws_server *s, struct lws *wsi) {
    for (int i = s->n_pre - 1; i >= 0; i--)
        if (s->pre[i].wsi == wsi) {
            memmove(&s->pre[i], &s->pre[i + 1], sizeof *s->pre * (size_t)(s->n_pre - i - 1));
            s->n_pre--;
            return;
        }
}

void pi0_ws_sock_open(pi0_ws_server *s, struct lws *wsi) {
    lws_set_opaque_user_data(wsi, (void *)&sock_marker);
    s->n_socks++;
    /* lws counts its listening socket and its wake-up pipe in the table too, and pauses
     * accepting one short of the limit: keep one more free than that. */
    if (s->n_socks + 4 > (int)s->fd_limit && s->n_pre > 0) {
        struct lws *old = s->pre[0].wsi;
        pre_remove(s, old);
        s->stats.evicted++;
        WS_LOG(s, "%d connections, near the descriptor limit (%u): closing the oldest one that sent no request "
               "headers\n", s->n_socks, s->fd_limit);
        lws_set_timeout(old, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    if (s->n_pre < (int)s->fd_limit) s->pre[s->n_pre++] = (struct pre_sock){wsi, pi0_ws_now_ms()};
}

void pi0_ws_sock_ready(pi0_ws_server *s, struct lws *wsi) { pre_remove(s, wsi); }

void pi0_ws_sock_gone(pi0_ws_server *s, struct lws *wsi) {
    if (lws_get_opaque_user_data(wsi) != &sock_marker) return;
    lws_set_opaque_user_data(wsi, NULL);
    s->n_socks--;
    pre_remove(s, wsi);
}

// ---- buffer budget -----------------------------------------------------------------------------

int pi0_ws_budget_take(pi0_ws_server *s, size_t add) {
    if (add > s->o.max_buffer_bytes - s->buf_used) return -1;   /* buf_used <= max always */
    s->buf_used += add;
    return 0;
}

void pi0_ws_budget_give(pi0_ws_server *s, size_t n) { s->buf_used -= n < s->buf_used ? n : s->buf_used; }

// ---- the 1 s sweep -----------------------------------------------------------------------------

static void evict(pi0_ws_server *s, conn *c, const char *msg) {
    s->stats.evicted++;
    pi0_ws_fail(s, c, PI0_WS_CLOSE_POLICY, msg, msg);
}

static void sweep_cb(lws_sorted_usec_list_t *sul) {
    pi0_ws_server *s = lws_container_of(sul, pi0_ws_server, sweep);
    double now = pi0_ws_now_ms();
    for (conn *c = s->conns; c; c = c->next) {
        /* A client waiting for its reply is alive as far as we know (it may not see our PING
         * while it waits; openpi's client does, but others need not). */
        if (c->job) lws_validity_confirmed(c->wsi);
        if (c->failed || !c->counted || s->draining) continue;
        char msg[120];
        double age = now - c->open_ms, rx_ms = now - c->rx_start_ms;
        if (!c->job && !c->served && c->rx_len == 0 && age > 1000.0 * s->o.idle_secs) {
            snprintf(msg, sizeof msg, "no request within %d s of connecting (--idle-secs)", s->o.idle_secs);
            evict(s, c, msg);
        } else if (c->rx_len > 0 && !c->held && s->o.min_rate > 0 && rx_ms > RATE_GRACE_MS &&
                   (double)c->rx_len < (double)s->o.min_rate * rx_ms / 1000.0) {
            snprintf(msg, sizeof msg, "request arriving at %.0f bytes/s, below the minimum %ld (--min-rate-kib)",
                     (double)c->rx_len * 1000.0 / rx_ms, s->o.min_rate);
            evict(s, c, msg);
        }
    }
    if (!atomic_load(&s->net_stop)) lws_sul_schedule(s->ctx, 0, &s->sweep, sweep_cb, LWS_US_PER_SEC);
}

void pi0_ws_sweep_start(pi0_ws_server *s) { lws_sul_schedule(s->ctx, 0, &s->sweep, sweep_cb, LWS_US_PER_SEC); }

// ---- oversized request headers -----------------------------------------------------------------

/* libwebsockets drops a request whose headers do not fit its buffer with no reply at all, and
 * calls no user callback before it shuts the socket down. Its log lines are the only hooks, and
 * both come on the network thread in the same call chain: "Ran out of header data space" (error)
 * while that connection is parsed, then "shutdown conn: ... (sk FD, ...)" (info) just before it
 * shuts down that socket's sending side. The second one tells us the socket: answer 431 there.
 * Info lines are enabled only between the two (formatting them for every request costs CPU). */
static _Thread_local int header_overflow;

static void reply_431(int fd) {
    /* Read what the client already sent: closing a socket with unread input sends a reset, which
     * can destroy the reply before the client reads it. */
    char buf[16384];
    for (int i = 0; i < 64 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++) {}
    char body[80], r[256];
    int nb = snprintf(body, sizeof body, "request headers too large (the limit is %d bytes)\n", PI0_WS_MAX_HEADER_BYTES);
    int n = snprintf(r, sizeof r, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s", nb, body);
    if (n > 0 && (size_t)n < sizeof r && send(fd, r, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* nothing more to do: the connection is being closed anyway */
    }
}

void pi0_ws_lws_log(int level, const char *line) {
    if (level == LLL_INFO) {   /* enabled only for the hook above; not printed */
        const char *sk = header_overflow && strstr(line, "shutdown conn:") ? strstr(line, "(sk ") : NULL;
        int fd;
        if (sk && sscanf(sk, "(sk %d", &fd) == 1 && fd >= 0) reply_431(fd);
        if (sk || !header_overflow) {
            header_overflow = 0;
            lws_set_log_level(LLL_ERR, pi0_ws_lws_log);
        }
        return;
    }
    if (strstr(line, "Ran out of header data space")) {
        header_overflow = 1;
        lws_set_log_level(LLL_ERR | LLL_INFO, pi0_ws_lws_log);
    }
    fprintf(stderr, "pi0 serve: libwebsockets %s: %s", level == LLL_ERR ? "error" : "warning", line);
}
