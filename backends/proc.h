/* backends/proc.h — local process control shared by the backends that start processes on
 * the server's host (local, bubblewrap, the CLI-driven ones): spawning into a new session
 * with a clean signal state, exit notification through a pollable fd, cancellation
 * tokens, and killing whole process trees.
 *
 * The server is a child subreaper, so descendants that lose their parent are reparented
 * to it. One thread (the server's signal thread) calls sw_proc_reap() on SIGCHLD; it
 * reaps every exited child, records the status of tracked ones and wakes their waiters.
 */
#ifndef SW_PROC_H
#define SW_PROC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

/* A cancellation token: a flag plus an eventfd that becomes readable when fired. */
typedef struct sw_cancel {
    atomic_int fired;
    int fd;
} sw_cancel;

int sw_cancel_init(sw_cancel *c);
void sw_cancel_fire(sw_cancel *c);
bool sw_cancel_fired(sw_cancel *c);
void sw_cancel_destroy(sw_cancel *c);

typedef struct sw_child sw_child;

typedef struct sw_spawn {
    const char *path;           /* executable (absolute) */
    char *const *argv;
    char *const *envp;
    const char *cwd;            /* NULL: inherit */
    int fd_in;                  /* becomes fd 0 (-1: /dev/null) */
    int fd_out;                 /* becomes fd 1 and 2 */
    const char *tty;            /* pty slave: becomes fd 0, 1, 2 and the controlling
                                   terminal (fd_in/fd_out ignored); or NULL */
    int fd3;                    /* becomes fd 3, or -1 */
    int fd4;                    /* becomes fd 4, or -1 (needs fd3) */
} sw_spawn;

/* Marks the server as child subreaper. Call once before starting children. */
int sw_proc_init(void);
/* Starts a child in a new session (pid == pgid == sid) with an empty signal mask and
 * default dispositions; every other fd is closed in the child. */
sw_child *sw_proc_spawn(const sw_spawn *sp, char *err, size_t errlen);
pid_t sw_child_pid(const sw_child *c);
/* An fd that becomes readable when the child has exited and been reaped. */
int sw_child_fd(const sw_child *c);
/* True once reaped; *status gets the wait status. */
bool sw_child_done(sw_child *c, int *status);
/* Waits up to timeout_ms (-1: forever) for the child; true when it has exited. */
bool sw_child_wait(sw_child *c, int timeout_ms);
/* Frees the handle; a child still running is killed (tree) and reaped in the background. */
void sw_child_free(sw_child *c);
/* Converts a wait status to a shell-style exit code (128+N for signal N). */
int sw_exit_code(int status);

/* Called by the signal thread on SIGCHLD. */
void sw_proc_reap(void);

/* Stops and SIGKILLs every process of session `sid` and every descendant of `root`,
 * repeating until none is left (bounded). Never signals the server itself. */
void sw_proc_kill_tree(pid_t root);
/* SIGTERM to the tree of `root` (as sw_proc_kill_tree selects it), up to grace_ms for it
 * to end, then stop-and-SIGKILL what is left. Returns how many processes survived even
 * that; their pids go to survivors (up to max). *forced (if not NULL) tells whether
 * anything was left after the grace period, so that SIGKILL was needed. */
size_t sw_proc_terminate_tree(pid_t root, int grace_ms, long *survivors, size_t max,
                              bool *forced);
/* The kernel start time of pid (clock ticks since boot), or 0 if it does not exist. */
unsigned long long sw_proc_start_time(pid_t pid);

/* Shutdown: refuses every later sw_proc_spawn, then kills every descendant of the server,
 * so nothing started concurrently by another thread can outlive it. */
void sw_proc_shutdown(void);

#endif
