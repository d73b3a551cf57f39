/* backends/local.h — what the local backend's files share. */
#ifndef SW_LOCAL_H
#define SW_LOCAL_H

#include "backends/backend.h"

const char *sw_local_bash(sw_backend *b);
/* argv for running tail[] in this environment: under its sandbox prefix, if any.
 * The array is the caller's to free (not the strings). */
char **sw_local_argv(sw_backend *b, char *const *tail);
/* Opens a local environment whose shells all run under `wrap` (an argv prefix such as a
 * bwrap command line ending in "--"; taken over, NULL-terminated, strings owned). */
int sw_local_open_wrapped(const sw_open_opts *o, char **wrap, sw_backend **out, char *err,
                          size_t errlen);
const char *sw_local_snapshot(sw_backend *b);
/* The environment a shell other than the first login shell starts with: empty (the
 * snapshot decides), or the server's environment while there is no snapshot. */
char *const *sw_local_shell_env(sw_backend *b);
/* Publishes the state of answered commands before anything else reads the snapshot. */
void sw_local_settle(sw_backend *b);

/* Landlock (backends/landlock.c): the trampoline's main, and the argv prefix that runs a
 * shell through it with the state directory hidden (except this environment's files). */
int sw_landlock_exec_main(int argc, char **argv);
char **sw_landlock_wrap(const char *state_dir, const char *env_dir, const char *hide_paths);
/* The kernel's Landlock ABI version, or 0 when it has none. */
int sw_landlock_abi(void);

int sw_local_run(sw_backend *b, const sw_run_req *req, sw_run_res *res);
void sw_local_prepare(sw_backend *b);
int sw_local_health(sw_backend *b, char *err, size_t errlen);
void sw_local_close(sw_backend *b);

int sw_local_bg_spawn(sw_backend *b, const sw_bg_req *req, sw_bg **out, sw_bg_info *info,
                      char *err, size_t errlen);
void sw_local_bg_status(sw_bg *p, sw_bg_state *st);
int sw_local_bg_write(sw_bg *p, const char *data, size_t len, bool eof);
/* 0: the tree ended within the grace period; 1: SIGKILL was needed after it; -1: some
 * processes survived even SIGKILL (see survivors). */
int sw_local_bg_kill(sw_bg *p, int grace_ms, long *survivors, size_t *nsurv);
sw_bg *sw_local_bg_adopt(long pid, unsigned long long start_time, const char *exit_path,
                         sw_bg_info *info);
void sw_local_bg_free(sw_bg *p);

/* The ops of a backend built on the local one (local itself, bubblewrap): everything but
 * the name and how an environment is opened is shared. */
#define SW_LOCAL_FAMILY_OPS(name_, open_, sandboxed_)                                      \
    {                                                                                      \
        .name = name_, .sandboxed = sandboxed_, .open = open_, .run = sw_local_run,        \
        .prepare = sw_local_prepare, .health = sw_local_health, .close = sw_local_close,   \
        .bg_spawn = sw_local_bg_spawn, .bg_status = sw_local_bg_status,                    \
        .bg_write = sw_local_bg_write, .bg_kill = sw_local_bg_kill,                        \
        .bg_adopt = sw_local_bg_adopt, .bg_free = sw_local_bg_free,                        \
    }

#endif
