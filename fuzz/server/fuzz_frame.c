/* fuzz_frame.c - libFuzzer harness for the server's transport (tools/server/ws.c on
 * libwebsockets): WebSocket frame parsing, message reassembly, the size limit, the request queue
 * and the decoder, driven over a loopback socket.
 *
 * One server (127.0.0.1, port 0, 1 MiB frame limit, a handler that decodes the request and
 * answers 4 bytes) runs for the whole fuzzing session. Each input: connect, complete the
 * upgrade handshake, send the input as raw client bytes (frames are the fuzzer's business; the
 * seed corpus has valid masked frames), half-close, read until the server closes or 2 s pass.
 * A crash, sanitizer report or hang in the server is a finding. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/msgpack_numpy.h"
#include "server/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int handle(void *user, const pi0_ws_request *req, pi0_ws_reply *rep) {
    (void)user;
    static pi0_mpk_obs o;
    char err[512];
    if (pi0_mpk_decode_obs(req->data, req->len, &o, err, sizeof err)) {
        rep->err = strdup(err);
        return -1;
    }
    pi0_mpk_obs_free(&o);
    rep->data = malloc(4);
    memcpy(rep->data, "\x81\xa1k\x01", 4);
    rep->len = 4;
    return 0;
}

static pi0_ws_server *srv;
static int port;

static void stop_server(void) { pi0_ws_stop(srv); }

static void start_server(void) {
    signal(SIGPIPE, SIG_IGN);
    pi0_ws_opts o = {.host = "127.0.0.1", .port = 0, .max_frame_bytes = 1 << 20, .max_queue = -1, .hello = (const uint8_t *)"\x80",
                     .hello_len = 1, .handle = handle};
    char err[256];
    if (pi0_ws_start(&o, &srv, err, sizeof err)) { fprintf(stderr, "%s\n", err); abort(); }
    port = pi0_ws_port(srv);
    atexit(stop_server);
}

/* libFuzzer's leak checks interrupt system calls: retry on EINTR. */
static int read_some(int fd, char *buf, size_t cap, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {}
    if (r <= 0) return -1;
    ssize_t n;
    while ((n = read(fd, buf, cap)) < 0 && errno == EINTR) {}
    return (int)n;
}

static int connect_retry(int fd, const struct sockaddr_in *a) {
    if (connect(fd, (const struct sockaddr *)a, sizeof *a) == 0) return 0;
    if (errno != EINTR) return -1;
    struct pollfd p = {.fd = fd, .events = POLLOUT};   /* the connection continues in the background */
    int r, e = 0;
    socklen_t len = sizeof e;
    while ((r = poll(&p, 1, 5000)) < 0 && errno == EINTR) {}
    if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) || e) return -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!srv) start_server();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Close with RST (linger 0), and use a new source address from 127/8 for every run: the
     * server closes first on errors, and its TIME_WAIT entries would otherwise use up the
     * loopback 4-tuples (and stall new handshakes) after ~28k runs. */
    static uint32_t run;
    run++;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000000u | (2 + run % 0xfffff0u));
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) ||
        bind(fd, (struct sockaddr *)&src, sizeof src) || connect_retry(fd, &a)) {
        perror("fuzz_frame: connect");
        abort();
    }
    static const char hs[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (write(fd, hs, sizeof hs - 1) != (ssize_t)(sizeof hs - 1)) abort();
    char buf[65536];
    int got = 0;
    while (got < 4 || !memmem(buf, (size_t)got, "\r\n\r\n", 4)) {   /* the 101 response */
        int n = read_some(fd, buf + got, sizeof buf - 1 - (size_t)got, 2000);
        if (n <= 0) {   /* the server must complete a valid handshake */
            fprintf(stderr, "fuzz_frame: no handshake response (%d bytes so far)\n", got);
            abort();
        }
        got += n;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;   /* the server may close early (error, oversize) */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 64; i++)
        if (read_some(fd, buf, sizeof buf, 2000) <= 0) break;
    close(fd);
    return 0;
}
