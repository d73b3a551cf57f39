/* backends/backend.h — the one interface every execution backend implements.
 *
 * A backend turns "run this wrapper script in this environment" into bytes and an exit
 * status. It never formats JSON for the client and never post-processes output: bytes go
 * to the sink raw (stdout and stderr merged, in order), and the output pipeline
 * (server/output.h) does the rest. State semantics (cwd, exported variables, functions,
 * aliases) come from the shared wrapper script (backends/script.h), so every backend that
 * runs the script with bash behaves the same.
 *
 * Lifecycle, driven by the environment manager (server/env.h):
 *
 *   open ──► run* / bg_* ──► close
 *
 *   open     Create or attach to the environment (spawn nothing slow on the caller's
 *            behalf that cannot be cancelled; honour opts->connect_timeout_ms). Captures
 *            the shell snapshot once (sw_script_snapshot_init) unless one already exists
 *            in opts->state_dir. Returns SW_BE_DEGRADED when the backend cannot be reached
 *            (daemon down, host unreachable) and SW_BE_ERROR for configuration errors.
 *   run      Runs one foreground command to completion. Guarantees:
 *            - stdin of the command is /dev/null (or empty);
 *            - every byte printed reaches sink->data before run returns, except bytes
 *              written by leftover background grandchildren after the shell exited;
 *            - returns promptly when the shell exits, even if a grandchild still holds
 *              the output stream open (at most a short bounded drain after exit);
 *            - waiting is event-driven (poll/epoll on fds, condition variables), never
 *              a sleep loop; sink->tick is called about once a second while it runs;
 *            - at the deadline or when req->cancel fires, the whole remote/local process
 *              tree of the command is killed (not just the transport), output so far is
 *              kept, and res->timed_out / res->cancelled is set;
 *            - transport failure mid-command → SW_BE_DEGRADED with res->error filled;
 *            - a vanished sandbox may be recreated once, the command re-run, and
 *              res->recreated set.
 *            It may be called concurrently from several threads on one environment.
 *   prepare  Optional. Called after a response was written, off the critical path: warm
 *            up for the next command (pre-spawn a shell, pre-open a channel).
 *   health   Optional. Cheap liveness check; 0 when usable.
 *   bg_*     Background processes for the process tool (see the members below). NULL
 *            until a backend implements them; the tools then refuse with a clear error.
 *   close    Kill everything the environment started (unless configured to persist),
 *            release the sandbox, free. Must finish within about a second.
 */
#ifndef SW_BACKEND_H
#define SW_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "backends/proc.h"

enum {
    SW_BE_OK = 0,
    SW_BE_ERROR = -1,     /* the tool failed for a reason the user must fix */
    SW_BE_DEGRADED = -2,  /* infrastructure unreachable; retrying later may work */
};

typedef struct sw_backend sw_backend;   /* one open environment; backend-defined */

/* Where a running command's bytes and heartbeats go. */
typedef struct sw_sink {
    void *ctx;
    void (*data)(void *ctx, const char *buf, size_t len);
    void (*tick)(void *ctx);              /* about once a second; may be NULL */
} sw_sink;

struct sw_config;

typedef struct sw_open_opts {
    const struct sw_config *config;   /* the server's settings (backend-specific ones too) */
    const char *task_id;          /* environment key */
    const char *state_dir;        /* private per-environment directory on the server host */
    const char *marker_id;        /* id used in the wrapper's cwd marker */
    const char *cwd;              /* initial working directory inside the environment */
    char *const *child_env;       /* filtered environment for commands (NULL-terminated) */
    int connect_timeout_ms;
} sw_open_opts;

typedef struct sw_run_req {
    const char *command;          /* the user's command text */
    const char *cwd;              /* directory to run in (session cwd or workdir) */
    const char *stdin_data;       /* stdin for the command (sudo passwords), or NULL for
                                     /dev/null; must never reach a command line */
    bool publish_state;           /* keep the env/function/alias changes of this command */
    int timeout_ms;
    sw_cancel *cancel;            /* fires on notifications/cancelled or shutdown */
    sw_sink sink;
} sw_run_req;

typedef struct sw_run_res {
    int exit_code;                /* shell exit status; 128+N when killed by signal N */
    bool timed_out;
    bool cancelled;
    bool recreated;               /* the sandbox was gone and was recreated */
    char error[512];              /* filled when run returns < 0 */
} sw_run_res;

/* Background processes. The server decides where their output goes: a log file on this
 * host (`log_path`). A local process writes its merged stdout/stderr straight into it (so
 * it keeps running and logging if the server dies); a pty process is read by the server
 * through `pty_fd` and appended to the log by the server. A backend without a live pipe
 * (ssh, containers, cloud) runs the command under a wrapper inside its sandbox that
 * writes a log file, a pid file and an exit-code file there, and copies new log bytes
 * into `log_path` whenever bg_status is called (reading incrementally by offset). */
typedef struct sw_bg sw_bg;             /* one background process; backend-defined */

typedef struct sw_bg_req {
    const char *command;
    const char *stdin_data;       /* stdin instead of /dev/null (sudo passwords); not for pty */
    const char *cwd;
    bool pty;                     /* 30x120 pseudo-terminal, TERM=xterm-256color */
    const char *log_path;         /* where merged output goes (created, mode 0600) */
    const char *exit_path;        /* where the wrapper writes "<exit code>\n" at the end */
} sw_bg_req;

typedef struct sw_bg_info {
    long pid;                     /* pid in the environment */
    unsigned long long start_time;/* kernel start time of pid (local), to recognise it later */
    int pty_fd;                   /* pty master (read output, write input), or -1 */
    int exit_fd;                  /* readable once the process has ended, or -1 (then poll
                                     bg_status on a timer) */
} sw_bg_info;

typedef struct sw_bg_state {
    bool running;
    bool lost;                    /* the sandbox holding it is gone */
    int exit_code;                /* valid when !running && !lost; -1 if unknown */
} sw_bg_state;

typedef struct sw_backend_ops {
    const char *name;             /* TERMINAL_ENV value */
    bool sandboxed;               /* commands are contained: the approval list is skipped
                                     (the hardline list never is) */
    /* Optional: checks the backend's settings at start, so that a malformed value stops
     * the server instead of failing the first call. 0, or -1 with err naming the variable. */
    int (*check_config)(const struct sw_config *cfg, char *err, size_t errlen);
    int (*open)(const sw_open_opts *opts, sw_backend **out, char *err, size_t errlen);
    int (*run)(sw_backend *b, const sw_run_req *req, sw_run_res *res);
    void (*prepare)(sw_backend *b);
    int (*health)(sw_backend *b, char *err, size_t errlen);
    void (*close)(sw_backend *b);

    /* Background processes; all NULL on a backend that has none yet.
     * bg_spawn  starts req->command under the wrapper (environment state, cwd) in its own
     *           session/process group, output to req->log_path or a pty, stdin /dev/null
     *           or the pty. Returns promptly; never waits for the command.
     * bg_status fills *st without blocking (and, on remote backends, copies new output
     *           into the log file).
     * bg_write  writes data to the pty; eof sends end-of-file (pty only).
     * bg_kill   SIGTERM to the whole tree, grace_ms, SIGKILL what is left, then checks
     *           that nothing survived; survivors (up to *nsurv) are reported.
     * bg_adopt  re-attaches to a process a previous server started (after a crash),
     *           only if pid still has start_time; NULL when that cannot be verified.
     * bg_free   releases the handle; the process keeps running unless it was killed. */
    int (*bg_spawn)(sw_backend *b, const sw_bg_req *req, sw_bg **out, sw_bg_info *info,
                    char *err, size_t errlen);
    void (*bg_status)(sw_bg *p, sw_bg_state *st);
    int (*bg_write)(sw_bg *p, const char *data, size_t len, bool eof);
    int (*bg_kill)(sw_bg *p, int grace_ms, long *survivors, size_t *nsurv);
    sw_bg *(*bg_adopt)(long pid, unsigned long long start_time, const char *exit_path,
                       sw_bg_info *info);
    void (*bg_free)(sw_bg *p);
} sw_backend_ops;

extern const sw_backend_ops sw_local_ops;
extern const sw_backend_ops sw_bubblewrap_ops;
/* In the shellwire-net.so module (see backend.c): */
extern const sw_backend_ops sw_ssh_ops;
extern const sw_backend_ops sw_docker_ops;
extern const sw_backend_ops sw_singularity_ops;
extern const sw_backend_ops sw_modal_ops;
extern const sw_backend_ops sw_daytona_ops;
extern const sw_backend_ops sw_morph_ops;

/* The ops for a TERMINAL_ENV value, or NULL when unknown or not built in. */
const sw_backend_ops *sw_backend_find(const char *name);

#endif
