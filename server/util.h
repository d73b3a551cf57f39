/* server/util.h — small helpers shared by the server and the backends: time, random ids,
 * whole-buffer I/O, directories, string building. */
#ifndef SW_UTIL_H
#define SW_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int64_t sw_now_ms(void);                 /* CLOCK_MONOTONIC */
int64_t sw_now_ns(void);
/* Fills out with 2*nbytes lowercase hex characters from the kernel's random source. */
void sw_random_hex(char *out, size_t nbytes);
/* Writes all of buf, retrying on EINTR/partial writes (blocking fds). */
int sw_write_all(int fd, const void *buf, size_t len);
/* mkdir -p with the given mode for created components. */
int sw_mkdir_p(const char *path, mode_t mode);
/* Removes a directory tree (no symlink following). */
void sw_rm_rf(const char *path);
char *sw_strdup(const char *s);          /* aborts on OOM */
char *sw_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *sw_xmalloc(size_t n);
void *sw_xcalloc(size_t n, size_t m);
void *sw_xrealloc(void *p, size_t n);
int sw_set_nonblock(int fd);
/* Starts a detached thread with the given stack size; 0 on success. */
int sw_thread_detached(void *(*fn)(void *), void *arg, size_t stack);
/* Single-quotes s for the shell: abc'd -> 'abc'\''d'. Caller frees. */
char *sw_shell_quote(const char *s);
/* Makes s valid UTF-8 in place: every byte that is not part of a well-formed character
 * (a character cut short by snprintf, bytes from a backend that are not UTF-8) becomes
 * '?'. JSON strings must be UTF-8, so messages built with printf go through this. */
void sw_utf8_sanitize(char *s);

#endif
