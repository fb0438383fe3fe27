/* file.c - non-blocking, regular-files-only open and whole-file read (contract in file.h). */
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"

static const char *kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

pi0_status pi0_file_open(const char *path, const char *what, int *fd, uint64_t *size) {
    *fd = -1;
    *size = 0;
    const char *w = what ? what : "file";
    /* O_NONBLOCK: a FIFO opens at once instead of waiting for a writer; it is refused below. */
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f < 0) return pi0_err(PI0_ERR_IO, "%s: cannot open %s: %s", path, w, strerror(errno));
    struct stat sb;
    if (fstat(f, &sb) != 0) {
        int e = errno;
        close(f);
        return pi0_err(PI0_ERR_IO, "%s: cannot stat %s: %s", path, w, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return pi0_err(PI0_ERR_FORMAT, "%s: %s is %s, expected a regular file", path, w, kind(sb.st_mode));
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0) (void)fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    *fd = f;
    *size = sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
    return PI0_OK;
}

pi0_status pi0_file_read(const char *path, const char *what, size_t max_bytes, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    pi0_status s = pi0_file_open(path, what, &fd, &size);
    if (s) return s;
    if (size > max_bytes) {
        close(fd);
        return pi0_err(PI0_ERR_FORMAT, "%s: %s is %llu bytes, more than the %zu allowed", path, what ? what : "file",
                       (unsigned long long)size, max_bytes);
    }
    char *b = malloc((size_t)size + 1);
    if (!b) { close(fd); return pi0_err(PI0_ERR_NOMEM, "%s: %llu bytes", path, (unsigned long long)size); }
    size_t got = 0;
    int e = 0;
    while (got < size) {
        ssize_t r = read(fd, b + got, (size_t)size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) e = errno;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(b);
        return pi0_err(PI0_ERR_IO, "%s: short read (%zu of %llu bytes)%s%s", path, got, (unsigned long long)size,
                       e ? ": " : "", e ? strerror(e) : "");
    }
    b[got] = '\0';
    *buf = b;
    *len = got;
    return PI0_OK;
}
