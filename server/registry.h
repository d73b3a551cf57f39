/* server/registry.h — background processes: the table of tracked processes (at most 64
 * per environment), their rolling output buffers (the last 200,000 characters), the reactor
 * thread that drains every log and pty and notices every exit, completion notices, and a
 * checkpoint under the state directory that a restarted server adopts. */
#ifndef SW_REGISTRY_H
#define SW_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>

#include "backends/proc.h"
#include "server/config.h"
#include "server/env.h"

#define SW_REG_MAX 64

/* Starts the reactor and adopts processes recorded by earlier servers that died. */
int sw_reg_init(const sw_config *cfg, const sw_backend_ops *ops);
/* Starts `command` in the background in env (the calling task's environment, acquired);
 * what runs is run_command (a rewritten form, e.g. for sudo) with stdin_data as stdin.
 * Returns the terminal tool's result envelope, or NULL with err filled. */
json_t *sw_reg_start(sw_env *env, const char *task, const char *command,
                     const char *run_command, const char *stdin_data, const char *cwd,
                     bool pty, bool notify, char *err, size_t errlen);
/* The process tool (task = the caller's environment). Returns the result envelope. */
json_t *sw_reg_action(const char *task, const char *action, json_t *args, sw_cancel *cancel);
/* At server exit, after its processes were killed: removes the checkpoint and logs. */
void sw_reg_shutdown(void);
/* Wakes every `wait` so it can notice a cancellation. */
void sw_reg_wake_waiters(void);

#endif
