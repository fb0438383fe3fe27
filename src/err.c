/* err.c - status strings, the thread-local last error, and the log callback (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

static void log_to_stderr(pi0_log_level level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    const char *name = (level >= PI0_LOG_DEBUG && level <= PI0_LOG_ERROR) ? names[level] : "log";
    if (level >= PI0_LOG_INFO) fprintf(stderr, "pi0: %s: %s\n", name, msg);
}

/* The only global mutable state besides last_error: set once by the application, read by logging. */
static pi0_log_fn log_fn = log_to_stderr;
static void *log_user;

pi0_status pi0_err(pi0_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

pi0_status pi0_err_prefix(pi0_status code, const char *fmt, ...) {
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* Build "<prefix>: <old>" piecewise; truncation of a long message is acceptable. */
    size_t np = strlen(prefix);
    if (np > sizeof last_error - 3) np = sizeof last_error - 3;
    memcpy(last_error, prefix, np);
    memcpy(last_error + np, ": ", 2);
    size_t room = sizeof last_error - np - 3, no = strlen(old);
    if (no > room) no = room;
    memcpy(last_error + np + 2, old, no);
    last_error[np + 2 + no] = '\0';
    return code;
}

void pi0_err_clear(void) { last_error[0] = '\0'; }

const char *pi0_last_error(void) { return last_error; }

const char *pi0_status_str(pi0_status s) {
    switch (s) {
    case PI0_OK: return "ok";
    case PI0_ERR_ARG: return "invalid argument";
    case PI0_ERR_IO: return "i/o error";
    case PI0_ERR_FORMAT: return "bad file format";
    case PI0_ERR_NOMEM: return "out of memory";
    case PI0_ERR_UNSUPPORTED: return "unsupported";
    case PI0_ERR_ABORTED: return "aborted";
    case PI0_ERR_INTERNAL: return "internal error";
    case PI0_ERR_NONFINITE: return "non-finite output";
    }
    return "unknown status";
}

void pi0_log_set(pi0_log_fn fn, void *user) {
    log_fn = fn ? fn : log_to_stderr;
    log_user = fn ? user : NULL;
}

void pi0_log(pi0_log_level level, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}
