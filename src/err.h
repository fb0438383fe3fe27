/* err.h - internal error reporting: a thread-local last-error message and the log callback.
 *
 * Every failing internal call returns pi0_err(code, fmt, ...), which formats the message into the
 * thread-local buffer read by pi0_last_error() and returns the code, so call sites stay one line:
 *     return pi0_err(PI0_ERR_FORMAT, "%s: tensor '%s': dtype %s, expected F32, BF16 or F16", ...);
 */
#ifndef PI0_ERR_H
#define PI0_ERR_H

#include "pi0.h"

#if defined(__GNUC__)
#define PI0_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PI0_PRINTF(a, b)
#endif

/* Set the thread-local last error and return `code`. */
pi0_status pi0_err(pi0_status code, const char *fmt, ...) PI0_PRINTF(2, 3);

/* Prefix the current last error with "<prefix>: " (adds context on the way up). Returns `code`. */
pi0_status pi0_err_prefix(pi0_status code, const char *fmt, ...) PI0_PRINTF(2, 3);

/* Clear the last error (called at the start of every public entry point). */
void pi0_err_clear(void);

/* Log through the callback set by pi0_log_set (stderr by default). */
void pi0_log(pi0_log_level level, const char *fmt, ...) PI0_PRINTF(2, 3);

#endif
