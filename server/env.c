/* server/env.c — see env.h. One mutex guards the table; opening a backend happens outside
 * it, with the entry in state OPENING so that other callers for the same task wait on the
 * condition variable instead of opening a second sandbox. */
#include "server/env.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/log.h"
#include "server/util.h"

enum state { EMPTY, OPENING, READY };

struct sw_env {
    char *task;
    char *cwd;
    char *dir;
    char marker[17];
    enum state state;
    sw_backend *backend;
    int busy;                  /* calls using it, plus background processes holding it */
    int held;                  /* of busy: the background processes */
    int64_t last_used;
    unsigned long next_turn;   /* turn number of the next arriving call */
    unsigned long *turns;      /* turns of calls that have not ended their turn */
    size_t nturns, capturns;
    struct sw_env *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;      /* an OPENING entry settled */
static pthread_cond_t reaper_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t turn_cv;                              /* a turn ended */
static sw_env *head;
static unsigned long counter;
static const sw_backend_ops *g_ops;
static char *g_runtime, *g_default_cwd;
static char **g_child_env;
static int64_t g_lifetime_ms;
static const sw_config *g_cfg;
static int64_t g_order_wait_ms;
static int g_connect_timeout_ms = 30000;
static bool g_stopping;
static int g_closing;               /* shutdown: environments still being closed */
static int64_t g_close_deadline;

static void *reaper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!g_stopping) {
        /* Wake a few times per lifetime; nothing runs in between. */
        int64_t period = g_lifetime_ms / 4;
        if (period < 1000) period = 1000;
        if (period > 30000) period = 30000;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += period / 1000;
        ts.tv_nsec += (period % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
        pthread_cond_timedwait(&reaper_cv, &mu, &ts);
        if (g_stopping) break;
        pthread_mutex_unlock(&mu);
        sw_env_reap_idle(sw_now_ms());
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int sw_env_init(const sw_config *cfg, const sw_backend_ops *ops, const char *runtime_dir,
                char **child_env)
{
    g_ops = ops;
    g_cfg = cfg;
    g_runtime = sw_strdup(runtime_dir);
    g_default_cwd = sw_strdup(cfg->cwd);
    g_child_env = child_env;
    g_lifetime_ms = cfg->lifetime_s * 1000;
    g_order_wait_ms = cfg->order_wait_s * 1000;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&turn_cv, &ca);
    pthread_condattr_destroy(&ca);
    return sw_thread_detached(reaper_main, NULL, 256 * 1024);
}

static sw_env *find_or_add(const char *task)
{
    for (sw_env *e = head; e; e = e->next)
        if (!strcmp(e->task, task)) return e;
    sw_env *e = sw_xcalloc(1, sizeof *e);
    e->task = sw_strdup(task);
    e->cwd = sw_strdup(g_default_cwd);
    e->dir = sw_printf("%s/env-%lu", g_runtime, ++counter);
    sw_random_hex(e->marker, 8);
    e->next = head;
    head = e;
    return e;
}

static bool earlier_running(const sw_env *e, unsigned long turn)
{
    for (size_t i = 0; i < e->nturns; i++)
        if (e->turns[i] < turn) return true;
    return false;
}

/* Waits (mu held) until no earlier turn is running or the order wait has passed. */
static void wait_turn(sw_env *e, unsigned long turn, sw_cancel *cancel)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += g_order_wait_ms / 1000;
    until.tv_nsec += (g_order_wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
    while (earlier_running(e, turn) && !(cancel && sw_cancel_fired(cancel)))
        if (pthread_cond_timedwait(&turn_cv, &mu, &until) == ETIMEDOUT) {
            sw_info("environment '%s': an earlier call is still running; starting call %lu "
                    "alongside it", e->task, turn);
            break;
        }
}

void sw_env_end_turn(sw_env *e, unsigned long turn)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < e->nturns; i++)
        if (e->turns[i] == turn) { e->turns[i] = e->turns[--e->nturns]; break; }
    pthread_cond_broadcast(&turn_cv);
    pthread_mutex_unlock(&mu);
}

void sw_env_wake_waiters(void)
{
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&turn_cv);
    pthread_mutex_unlock(&mu);
}

sw_env *sw_env_take_turn(const char *task_id, unsigned long *turn)
{
    pthread_mutex_lock(&mu);
    sw_env *e = find_or_add(task_id);
    *turn = e->next_turn++;
    if (e->nturns == e->capturns)
        e->turns = sw_xrealloc(e->turns, (e->capturns = e->capturns ? 2 * e->capturns : 8) * sizeof *e->turns);
    e->turns[e->nturns++] = *turn;
    pthread_mutex_unlock(&mu);
    return e;
}

sw_env *sw_env_peek_turn(const char *task_id, unsigned long *next)
{
    pthread_mutex_lock(&mu);
    sw_env *e = find_or_add(task_id);
    *next = e->next_turn;
    pthread_mutex_unlock(&mu);
    return e;
}

void sw_env_wait_before(sw_env *e, unsigned long turn, sw_cancel *cancel)
{
    pthread_mutex_lock(&mu);
    wait_turn(e, turn, cancel);
    pthread_mutex_unlock(&mu);
}

int sw_env_acquire(sw_env *e, unsigned long turn, sw_cancel *cancel, int *status, char *err,
                   size_t errlen)
{
    pthread_mutex_lock(&mu);
    e->busy++;
    while (e->state == OPENING) pthread_cond_wait(&cv, &mu);
    if (e->state == EMPTY) {
        e->state = OPENING;
        pthread_mutex_unlock(&mu);
        sw_open_opts o = {
            .config = g_cfg, .task_id = e->task, .state_dir = e->dir, .marker_id = e->marker, .cwd = e->cwd,
            .child_env = g_child_env, .connect_timeout_ms = g_connect_timeout_ms,
        };
        sw_backend *b = NULL;
        int rc = g_ops->open(&o, &b, err, errlen);
        pthread_mutex_lock(&mu);
        if (rc != SW_BE_OK) {
            e->state = EMPTY;
            e->busy--;
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
            *status = rc;
            return -1;
        }
        e->backend = b;
        e->state = READY;
        pthread_cond_broadcast(&cv);
    }
    wait_turn(e, turn, cancel);
    e->last_used = sw_now_ms();
    pthread_mutex_unlock(&mu);
    return 0;
}

void sw_env_release(sw_env *e)
{
    if (g_ops->prepare) g_ops->prepare(e->backend);
    pthread_mutex_lock(&mu);
    e->busy--;
    e->last_used = sw_now_ms();
    pthread_mutex_unlock(&mu);
}

void sw_env_hold(sw_env *e)
{
    pthread_mutex_lock(&mu);
    e->busy++;
    e->held++;
    pthread_mutex_unlock(&mu);
}

void sw_env_unhold(sw_env *e)
{
    pthread_mutex_lock(&mu);
    e->busy--;
    e->held--;
    e->last_used = sw_now_ms();
    pthread_mutex_unlock(&mu);
}

sw_backend *sw_env_backend(sw_env *e) { return e->backend; }
const char *sw_env_marker(sw_env *e) { return e->marker; }
const sw_backend_ops *sw_env_ops(sw_env *e) { (void)e; return g_ops; }

char *sw_env_cwd(sw_env *e)
{
    pthread_mutex_lock(&mu);
    char *c = sw_strdup(e->cwd);
    pthread_mutex_unlock(&mu);
    return c;
}

void sw_env_set_cwd(sw_env *e, const char *cwd)
{
    char *c = sw_strdup(cwd);
    pthread_mutex_lock(&mu);
    char *old = e->cwd;
    e->cwd = c;
    pthread_mutex_unlock(&mu);
    free(old);
}

int sw_env_reap_idle(int64_t now_ms)
{
    int n = 0;
    for (;;) {
        sw_backend *victim = NULL;
        pthread_mutex_lock(&mu);
        for (sw_env *e = head; e; e = e->next) {
            if (e->state == READY && e->busy == 0 && now_ms - e->last_used >= g_lifetime_ms) {
                victim = e->backend;
                e->backend = NULL;
                e->state = EMPTY;
                sw_info("releasing idle environment '%s'", e->task);
                break;
            }
        }
        pthread_mutex_unlock(&mu);
        if (!victim) return n;
        g_ops->close(victim);
        n++;
    }
}

static void wait_a_little(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_cond_timedwait(&cv, &mu, &ts);
}

/* Closes one environment at shutdown: after the calls in it have returned (they are being
 * cancelled), not waiting for its background processes, which the close ends. */
static void *closer_main(void *arg)
{
    sw_env *e = arg;
    pthread_mutex_lock(&mu);
    while (e->busy > e->held && sw_now_ms() < g_close_deadline) wait_a_little();
    sw_backend *b = NULL;
    if (e->busy == e->held && e->state == READY) {
        b = e->backend;
        e->backend = NULL;
        e->state = EMPTY;
    }
    pthread_mutex_unlock(&mu);
    if (b) g_ops->close(b);
    pthread_mutex_lock(&mu);
    g_closing--;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

void sw_env_shutdown(int budget_ms)
{
    pthread_mutex_lock(&mu);
    if (g_stopping) {
        pthread_mutex_unlock(&mu);
        return;
    }
    g_stopping = true;
    pthread_cond_broadcast(&reaper_cv);
    g_close_deadline = sw_now_ms() + budget_ms;
    /* In parallel: releasing a sandbox can take a round trip or two. The entries are not
     * freed; the process is about to exit and the registry may still point at them. */
    for (sw_env *e = head; e; e = e->next)
        if (e->state == READY) {
            g_closing++;
            if (sw_thread_detached(closer_main, e, 256 * 1024) != 0) g_closing--;
        }
    while (g_closing > 0 && sw_now_ms() < g_close_deadline) wait_a_little();
    pthread_mutex_unlock(&mu);
}
