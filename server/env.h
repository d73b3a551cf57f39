/* server/env.h — the environment manager: one backend instance per task id, created once
 * under a per-task lock (concurrent first calls share it), kept with its session state
 * (cwd, marker, state directory), and released after TERMINAL_LIFETIME_SECONDS idle. The
 * session state outlives a released instance, so a re-opened environment continues
 * where the old one stopped (on backends whose state lives on this host). */
#ifndef SW_ENV_H
#define SW_ENV_H

#include <stdint.h>

#include "backends/backend.h"
#include "server/config.h"

typedef struct sw_env sw_env;

/* runtime_dir: private directory for per-environment state; removed by the caller. */
int sw_env_init(const sw_config *cfg, const sw_backend_ops *ops, const char *runtime_dir,
                char **child_env);
/* Takes the next turn in the environment of task_id (creating its entry if needed).
 * Called when a call arrives, on the reader thread, so turns follow arrival order.
 * Every turn taken must be ended with sw_env_end_turn. */
sw_env *sw_env_take_turn(const char *task_id, unsigned long *turn);
/* For calls that read an environment's state without changing it (the process tool):
 * the entry of task_id and the turn number the next call would get, without taking it. */
sw_env *sw_env_peek_turn(const char *task_id, unsigned long *next);
/* Waits until no turn before `turn` is running (bounded like sw_env_acquire). */
void sw_env_wait_before(sw_env *e, unsigned long turn, sw_cancel *cancel);
/* Opens the environment if needed and marks it busy, then waits until every earlier
 * turn has ended, but at most SHELLWIRE_ORDER_WAIT seconds (after which the call runs
 * alongside them) or until `cancel` fires (the caller checks). On failure returns -1,
 * *status is SW_BE_ERROR or SW_BE_DEGRADED and err says why (the turn stays open). */
int sw_env_acquire(sw_env *e, unsigned long turn, sw_cancel *cancel, int *status, char *err,
                   size_t errlen);
/* Wakes calls waiting for their turn so they notice a cancellation. */
void sw_env_wake_waiters(void);
/* Ends a call's turn: later calls may start (its state changes are published). */
void sw_env_end_turn(sw_env *e, unsigned long turn);
/* Warms the backend up for the next call (off the critical path), then marks it idle. */
void sw_env_release(sw_env *e);
sw_backend *sw_env_backend(sw_env *e);
/* The id the wrapper uses in this environment's cwd marker. */
const char *sw_env_marker(sw_env *e);
const sw_backend_ops *sw_env_ops(sw_env *e);
/* The session working directory (copy; caller frees) and its update. */
char *sw_env_cwd(sw_env *e);
void sw_env_set_cwd(sw_env *e, const char *cwd);
/* Keeps an environment from being released while a background process runs in it. */
void sw_env_hold(sw_env *e);
void sw_env_unhold(sw_env *e);
/* Releases environments idle longer than the lifetime; returns how many. */
int sw_env_reap_idle(int64_t now_ms);
/* Shutdown: closes every environment (in parallel; each once the calls in it have
 * returned), waiting at most budget_ms in all. Later calls do nothing. */
void sw_env_shutdown(int budget_ms);

#endif
