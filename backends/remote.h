/* backends/remote.h — one backend implementation for every place the server cannot spawn
 * into directly (ssh, docker, singularity, modal, daytona, morph).
 *
 * Such a backend is split in two:
 *  - a transport (backends/ssh.c, docker.c, ...) knows how to reach one sandbox and run
 *    one bash script in it, streaming the output back: connect, exec, close;
 *  - this layer (backends/remote.c) does everything else the same way for all of them:
 *    the snapshot in a private directory inside the sandbox, the shared wrapper script,
 *    the end of a command recognised in the stream (so a grandchild that keeps the stream
 *    open does not delay the answer), killing the command's process tree inside the
 *    sandbox at a timeout or cancellation, reconnecting after a transport failure,
 *    recreating a vanished sandbox once, and background processes (a wrapper inside the
 *    sandbox writes a log and an exit file; a poller thread copies new log bytes to the
 *    server's log file and reports the exit).
 *
 * Every script this layer hands to exec starts with `exec </dev/null 2>&1`, so output is
 * one merged stream and nothing reads the transport's stdin. A transport must run it
 * with bash (`bash -c SCRIPT`, or the script fed to bash on stdin — preferred where the
 * transport can, because the script may carry a sudo password in a here-string and so
 * should not appear on a command line).
 */
#ifndef SW_REMOTE_H
#define SW_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "backends/backend.h"

typedef struct sw_transport sw_transport;   /* transport-defined */

/* What exec returns. */
enum {
    SW_TR_OK = 0,           /* the script ran; *exit_code is its status */
    SW_TR_ERROR = -1,       /* a failure the user must fix (bad configuration, refused auth) */
    SW_TR_DEGRADED = -2,    /* cannot reach the sandbox now (network, daemon, 5xx) */
    SW_TR_GONE = -3,        /* the sandbox no longer exists (container removed, 404) */
    SW_TR_INTERRUPTED = -4, /* the deadline passed, cancel fired, or out() asked to stop:
                               exec stopped waiting (nothing needs to have been killed) */
};

typedef struct sw_exec_req {
    const char *script;     /* bash script (see above) */
    int timeout_ms;         /* stop waiting after this long; 0 = no deadline */
    sw_cancel *cancel;      /* stop waiting when it fires; may be NULL */
    /* Output bytes in order as they arrive. A nonzero return asks exec to stop reading
     * and return SW_TR_INTERRUPTED at once (the command is known to be finished). */
    int (*out)(void *ctx, const char *buf, size_t len);
    void (*tick)(void *ctx);/* about once a second while waiting; may be NULL */
    void *ctx;
} sw_exec_req;

typedef struct sw_transport_ops {
    const char *name;       /* TERMINAL_ENV value, for messages */
    /* Directory inside the sandbox under which this layer keeps one private directory per
     * environment ("/tmp" if NULL). */
    const char *state_root;
    /* Reaches (creates, starts) the sandbox for environment o. Honour
     * o->connect_timeout_ms. SW_TR_DEGRADED / SW_TR_ERROR with err filled. */
    int (*connect)(const sw_open_opts *o, sw_transport **out, char *err, size_t errlen);
    /* Runs one script. May be called from several threads at once. On SW_TR_OK the exit
     * status goes to *exit_code; otherwise err says why (not for INTERRUPTED). */
    int (*exec)(sw_transport *t, const sw_exec_req *req, int *exit_code, char *err,
                size_t errlen);
    /* Optional: re-establishes the connection to the same sandbox after SW_TR_DEGRADED
     * (SW_TR_OK, SW_TR_DEGRADED again, or SW_TR_GONE when the sandbox is gone). NULL when
     * every exec connects anew anyway (HTTP). */
    int (*reconnect)(sw_transport *t, char *err, size_t errlen);
    /* Optional: replaces a vanished sandbox with a new one in place (same handle). NULL:
     * this layer calls close + connect. */
    int (*recreate)(sw_transport *t, char *err, size_t errlen);
    /* Releases the sandbox (stop/remove/terminate per configuration) and frees t. Must
     * finish within a couple of seconds. */
    void (*close)(sw_transport *t);
} sw_transport_ops;

/* The backend ops of a transport: every member of sw_backend_ops but open is implemented
 * by this layer. A transport file ends with
 *   static int ssh_open(const sw_open_opts *o, sw_backend **out, char *err, size_t n)
 *   { return sw_remote_open(&ssh_transport, o, out, err, n); }
 *   const sw_backend_ops sw_ssh_ops = SW_REMOTE_OPS("ssh", false, ssh_open);
 * More members (.check_config = ...) may follow open. */
int sw_remote_open(const sw_transport_ops *tr, const sw_open_opts *o, sw_backend **out,
                   char *err, size_t errlen);
int sw_remote_run(sw_backend *b, const sw_run_req *req, sw_run_res *res);
int sw_remote_health(sw_backend *b, char *err, size_t errlen);
void sw_remote_close(sw_backend *b);
int sw_remote_bg_spawn(sw_backend *b, const sw_bg_req *req, sw_bg **out, sw_bg_info *info,
                       char *err, size_t errlen);
void sw_remote_bg_status(sw_bg *p, sw_bg_state *st);
int sw_remote_bg_write(sw_bg *p, const char *data, size_t len, bool eof);
int sw_remote_bg_kill(sw_bg *p, int grace_ms, long *survivors, size_t *nsurv);
void sw_remote_bg_free(sw_bg *p);

#define SW_REMOTE_OPS(name_, sandboxed_, open_fn, ...)                                     \
    {                                                                                      \
        .name = name_, .sandboxed = sandboxed_, .open = open_fn,                           \
        .run = sw_remote_run, .health = sw_remote_health, .close = sw_remote_close,        \
        .bg_spawn = sw_remote_bg_spawn, .bg_status = sw_remote_bg_status,                  \
        .bg_write = sw_remote_bg_write, .bg_kill = sw_remote_bg_kill,                      \
        .bg_free = sw_remote_bg_free, __VA_ARGS__                                          \
    }

#endif
