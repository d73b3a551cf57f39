/* backends/remote.c — the part of every remote backend that does not depend on how the
 * sandbox is reached (see remote.h).
 *
 * Inside the sandbox each environment owns one directory, <state_root>/shellwire-<marker>:
 *   snapshot, snap.<k>  exported variables, functions and aliases (the wrapper's state):
 *                       the first one, then the dumps of commands, in slots k < 64
 *   bg/<id>.sh|.log|.exit|.snap  a background process: script, output, status, state
 *   bg/<id>.sh|.log|.exit  a background process: its script, output and exit status
 *
 * A foreground command is the shared wrapper script with two additions: it first prints
 * its own pid on a line of its own, and after the cwd marker it prints an end tag with the
 * exit status. The pid line lets a timeout or cancellation kill the command's tree inside
 * the sandbox (a second exec runs a kill script that walks /proc); the end tag lets a call
 * answer as soon as the shell is done even when a background grandchild keeps the stream
 * open. Both are removed from the output here; everything else goes to the sink as is.
 *
 * Publishing a command's state costs no process: each command dumps into a free slot
 * file, and the server remembers which file holds the newest complete state (the one of
 * the last command whose end tag arrived, which comes after its dump) and hands that one
 * to the next command. A slot being read or written by a running command is never
 * chosen, so no file changes under a reader.
 *
 * Background processes run detached inside the sandbox (own process group, output to a
 * log file there). One poller thread per environment, running only while such processes
 * live, asks for all their states and new output in one exec, appends the output to the
 * server's log files and signals an eventfd when a process ended. The poll interval starts
 * at 20 ms and doubles up to 1 s while nothing changes.
 */
#include "backends/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "backends/script.h"
#include "server/log.h"
#include "server/util.h"

#define KILL_TIMEOUT_MS 10000
#define SETUP_TIMEOUT_MS 30000
#define POLL_MIN_MS 20
#define POLL_MAX_MS 1000
#define POLL_CHUNK (1024 * 1024)   /* new output fetched per process per poll */
#define END_TAG "__SHELLWIRE_END_"

struct sw_bg {
    sw_backend *b;              /* NULL once the environment is closed */
    struct sw_bg *next;
    char id[17];
    long pid;
    int log_fd;                 /* server-side log, appended */
    char *exit_path;            /* server-side exit file */
    long long off;              /* bytes of the remote log copied so far */
    bool running, lost;
    int exit_code;
    int efd;                    /* eventfd: readable once ended */
};

struct sw_backend {
    const sw_transport_ops *tr;
    sw_transport *t;
    pthread_rwlock_t tlock;     /* exec: read; reconnect / recreate / close: write */
    pthread_mutex_t mu;         /* broken, the snapshot slots */
    bool broken;                /* the last exec could not reach the sandbox */
    char *dir, *qdir;           /* the environment's directory in the sandbox (and quoted) */
    char *snapshot;             /* the first state */
    int snap_cur;               /* slot with the newest state, or -1: snapshot */
    uint64_t snap_busy;         /* slots read or written by running commands (under mu) */
    char *marker;
    char *tag;                  /* END_TAG<marker>__ */
    /* copies of the open options, for recreating */
    sw_open_opts o;
    char *o_task, *o_state, *o_cwd;
    long sessions[256];         /* pids of recent commands' shells: their sessions are
                                   ended at close (under mu) */
    size_t nsessions;
    /* background processes */
    struct sw_bg *procs;        /* under g_bg_mu */
    pthread_t poller;
    bool poller_started, stopping;
    pthread_cond_t poll_cv;     /* under g_bg_mu */
};

/* One lock for every environment's process list: a process outlives its environment's
 * handle (the registry keeps finished ones for half an hour). */
static pthread_mutex_t g_bg_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- scripts ---------------------------------------------------------------------- */

/* Bash functions for killing a process tree inside the sandbox with builtins and /proc
 * only: the tree of each root (through /proc/<pid>/task/<tid>/children), plus every member
 * of a root's process group when the root leads one. __sw_kill GRACE_MS ROOT... sends
 * SIGTERM, waits up to GRACE_MS for the tree to end, then stops and SIGKILLs whatever is
 * left (including children forked meanwhile) and prints "survivors:" and the pids still
 * alive. */
static const char KILL_FUNCS[] =
    "__sw_tree() { local f c k; __sw_all+=\" $1\"; "
    "for f in /proc/$1/task/*/children; do k=; read -r -a k < \"$f\" 2>/dev/null; "
    "for c in \"${k[@]}\"; do __sw_tree \"$c\"; done; done; }\n"
    "__sw_group() { local f s a; for f in /proc/[0-9]*/stat; do s=; read -r s < \"$f\" 2>/dev/null || continue; "
    "read -r -a a <<< \"${s##*) }\"; [ \"${a[2]}\" = \"$1\" ] && __sw_all+=\" ${f:6:-5}\"; done; }\n"
    "__sw_collect() { local p s a; __sw_all=; for p in \"$@\"; do [ -d /proc/$p ] || continue; __sw_tree $p; "
    "s=; read -r s < /proc/$p/stat 2>/dev/null; read -r -a a <<< \"${s##*) }\"; "
    "[ \"${a[2]}\" = \"$p\" ] && __sw_group $p; done; }\n"
    "__sw_alive() { local p s r=; for p in $__sw_all; do [ \"$p\" = $$ ] && continue; s=; "
    "read -r s < /proc/$p/stat 2>/dev/null || continue; s=${s##*) }; [ \"${s:0:1}\" = Z ] || r+=\" $p\"; done; "
    "__sw_live=$r; }\n"
    "__sw_kill() { local g=$1 t=0 i; shift; __sw_collect \"$@\"; __sw_alive; "
    "if [ \"$g\" -gt 0 ] && [ -n \"$__sw_live\" ]; then kill -TERM $__sw_live 2>/dev/null; kill -CONT $__sw_live 2>/dev/null; "
    "while [ $t -lt $g ]; do __sw_alive; [ -z \"$__sw_live\" ] && break; sleep 0.05; t=$((t+50)); done; fi; "
    "for i in 1 2 3 4 5; do __sw_collect \"$@\" $__sw_live; __sw_alive; [ -z \"$__sw_live\" ] && break; "
    "kill -STOP $__sw_live 2>/dev/null; __sw_collect \"$@\" $__sw_live; __sw_alive; "
    "kill -KILL $__sw_live 2>/dev/null; sleep 0.05; __sw_alive; [ -z \"$__sw_live\" ] && break; done; "
    "printf 'survivors:%s\\n' \"$__sw_live\"; }\n"
    /* __sw_sessions SID...: stop and SIGKILL every process of those sessions (what the
     * commands of a closing environment left running). */
    "__sw_sessions() { local f s a r= w=\" $* \"; for f in /proc/[0-9]*/stat; do s=; read -r s < \"$f\" 2>/dev/null || continue; "
    "read -r -a a <<< \"${s##*) }\"; [[ $w == *\" ${a[3]} \"* ]] && [ \"${f:6:-5}\" != $$ ] && r+=\" ${f:6:-5}\"; done; "
    "[ -n \"$r\" ] && { kill -STOP $r; kill -KILL $r; } 2>/dev/null; true; }\n";

/* ---- exec helpers ------------------------------------------------------------------- */

typedef struct capture {
    char *buf;
    size_t len, cap, limit;
} capture;

static int capture_out(void *ctx, const char *buf, size_t len)
{
    capture *c = ctx;
    if (c->len + len > c->limit) len = c->limit - c->len;
    if (c->len + len + 1 > c->cap) {
        c->cap = (c->len + len + 1) * 2;
        if (c->cap > c->limit + 1) c->cap = c->limit + 1;
        c->buf = sw_xrealloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, buf, len);
    c->len += len;
    c->buf[c->len] = '\0';
    return 0;
}

/* Runs one short script and collects its output (at most cap bytes; *out is the
 * caller's to free). */
static int capture_script(const sw_transport_ops *tr, sw_transport *t, const char *script,
                          int timeout_ms, char **out, size_t *outlen, size_t cap, int *exit_code,
                          char *err, size_t errlen)
{
    capture c = {.buf = sw_xmalloc(1), .cap = 1, .limit = cap};
    c.buf[0] = '\0';
    sw_exec_req rq = {.script = script, .timeout_ms = timeout_ms, .out = capture_out, .ctx = &c};
    int ec = -1;
    int rc = tr->exec(t, &rq, &ec, err, errlen);
    if (rc == SW_TR_INTERRUPTED) snprintf(err, errlen, "the %s sandbox did not answer within %d ms", tr->name, timeout_ms);
    if (exit_code) *exit_code = ec;
    if (out) *out = c.buf;
    else free(c.buf);
    if (outlen) *outlen = c.len;
    return rc;
}

/* Runs a short script under the transport lock. */
static int run_capture(sw_backend *b, const char *script, int timeout_ms, char **out,
                       size_t *outlen, size_t cap, int *ec, char *err, size_t errlen)
{
    pthread_rwlock_rdlock(&b->tlock);
    int rc = capture_script(b->tr, b->t, script, timeout_ms, out, outlen, cap, ec, err, errlen);
    pthread_rwlock_unlock(&b->tlock);
    return rc;
}

/* Creates the environment's directory and the first snapshot from a login shell. */
static int setup(sw_backend *b, char *err, size_t errlen)
{
    char *tmp = sw_printf("%s/snapshot.init", b->dir);
    char *init = sw_script_snapshot_init(tmp, NULL);
    char *qinit = sw_shell_quote(init), *qtmp = sw_shell_quote(tmp), *qsnap = sw_shell_quote(b->snapshot);
    char *script = sw_printf(
        "exec </dev/null 2>&1; umask 077; mkdir -p %s/bg || exit 1; "
        "[ -f %s ] && exit 0; bash -l -c %s >/dev/null 2>&1 </dev/null; "
        "[ -f %s ] || : > %s; mv -f %s %s\n",
        b->qdir, qsnap, qinit, qtmp, qtmp, qtmp, qsnap);
    char *out = NULL;
    int ec = -1;
    int rc = capture_script(b->tr, b->t, script, SETUP_TIMEOUT_MS, &out, NULL, 4096, &ec, err, errlen);
    if (rc == SW_TR_OK && ec != 0) {
        snprintf(err, errlen, "could not prepare the %s sandbox (bash missing or %s not writable?): "
                              "exit %d: %.200s", b->tr->name, b->dir, ec, out ? out : "");
        rc = SW_TR_ERROR;
    }
    free(out);
    free(script);
    free(qinit);
    free(qtmp);
    free(qsnap);
    free(init);
    free(tmp);
    return rc;
}

static int be_status(int tr_rc)
{
    return tr_rc == SW_TR_OK ? SW_BE_OK : tr_rc == SW_TR_ERROR ? SW_BE_ERROR : SW_BE_DEGRADED;
}

int sw_remote_open(const sw_transport_ops *tr, const sw_open_opts *o, sw_backend **out,
                   char *err, size_t errlen)
{
    sw_transport *t = NULL;
    int rc = tr->connect(o, &t, err, errlen);
    if (rc != SW_TR_OK) return be_status(rc == SW_TR_GONE ? SW_TR_DEGRADED : rc);
    sw_backend *b = sw_xcalloc(1, sizeof *b);
    b->tr = tr;
    b->t = t;
    pthread_rwlock_init(&b->tlock, NULL);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->poll_cv, NULL);
    b->marker = sw_strdup(o->marker_id);
    b->dir = sw_printf("%s/shellwire-%s", tr->state_root ? tr->state_root : "/tmp", o->marker_id);
    b->qdir = sw_shell_quote(b->dir);
    b->snapshot = sw_printf("%s/snapshot", b->dir);
    b->snap_cur = -1;
    b->tag = sw_printf(END_TAG "%s__", o->marker_id);
    b->o = *o;
    b->o.task_id = b->o_task = sw_strdup(o->task_id);
    b->o.state_dir = b->o_state = sw_strdup(o->state_dir);
    b->o.marker_id = b->marker;
    b->o.cwd = b->o_cwd = sw_strdup(o->cwd);
    rc = setup(b, err, errlen);
    if (rc != SW_TR_OK) {
        sw_remote_close(b);
        return be_status(rc == SW_TR_GONE || rc == SW_TR_INTERRUPTED ? SW_TR_DEGRADED : rc);
    }
    *out = b;
    return SW_BE_OK;
}

/* A fresh sandbox in place of a vanished one. Caller holds the write lock. */
static int recreate_locked(sw_backend *b, char *err, size_t errlen)
{
    int rc;
    if (b->tr->recreate) {
        rc = b->tr->recreate(b->t, err, errlen);
    } else {
        b->tr->close(b->t);
        b->t = NULL;
        rc = b->tr->connect(&b->o, &b->t, err, errlen);
    }
    if (rc == SW_TR_OK) rc = setup(b, err, errlen);
    pthread_mutex_lock(&b->mu);
    b->snap_cur = -1;            /* the new sandbox starts from its own first state */
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* Before a command: reconnect if the last exec could not reach the sandbox. */
static int ensure_connected(sw_backend *b, bool *recreated, char *err, size_t errlen)
{
    pthread_mutex_lock(&b->mu);
    bool broken = b->broken;
    pthread_mutex_unlock(&b->mu);
    if (!broken) return SW_TR_OK;
    pthread_rwlock_wrlock(&b->tlock);
    int rc = SW_TR_OK;
    if (!b->t) rc = SW_TR_GONE;
    else if (b->tr->reconnect) rc = b->tr->reconnect(b->t, err, errlen);
    if (rc == SW_TR_GONE) {
        rc = recreate_locked(b, err, errlen);
        *recreated = rc == SW_TR_OK;
    }
    pthread_rwlock_unlock(&b->tlock);
    pthread_mutex_lock(&b->mu);
    b->broken = rc != SW_TR_OK;
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static void mark_broken(sw_backend *b)
{
    pthread_mutex_lock(&b->mu);
    b->broken = true;
    pthread_mutex_unlock(&b->mu);
}

/* ---- foreground commands ------------------------------------------------------------ */

static char *slot_path(sw_backend *b, int k)
{
    return k < 0 ? sw_strdup(b->snapshot) : sw_printf("%s/snap.%d", b->dir, k);
}

/* The newest state's file, marked busy for the caller (release with snap_done). */
static int snap_take(sw_backend *b, char **path)
{
    pthread_mutex_lock(&b->mu);
    int k = b->snap_cur;
    if (k >= 0) b->snap_busy |= 1ULL << k;
    pthread_mutex_unlock(&b->mu);
    *path = slot_path(b, k);
    return k;
}

/* A free slot for a command's dump (marked busy), or -1 when all 64 are in use. */
static int slot_take(sw_backend *b)
{
    pthread_mutex_lock(&b->mu);
    int k = -1;
    for (int i = 0; i < 64 && k < 0; i++)
        if (i != b->snap_cur && !(b->snap_busy & (1ULL << i))) k = i;
    if (k >= 0) b->snap_busy |= 1ULL << k;
    pthread_mutex_unlock(&b->mu);
    return k;
}

/* Releases the slots of a command; `newest` (>= 0) now holds the newest state. */
static void slots_done(sw_backend *b, int read, int wrote, int newest)
{
    pthread_mutex_lock(&b->mu);
    if (read >= 0) b->snap_busy &= ~(1ULL << read);
    if (wrote >= 0) b->snap_busy &= ~(1ULL << wrote);
    if (newest >= 0) b->snap_cur = newest;
    pthread_mutex_unlock(&b->mu);
}

/* Reads the pid line, passes the output on, and spots the end tag. */
typedef struct fg_stream {
    const sw_run_req *req;
    const char *tag;
    size_t taglen;
    char head[32];              /* the pid line so far */
    size_t headlen;
    bool head_done;
    long pid;
    char *hold;                 /* tail kept back in case it starts the end tag */
    size_t holdlen;
    bool ended;
    int exit_code;
} fg_stream;

static void fg_emit(fg_stream *s, const char *p, size_t n)
{
    if (n && s->req->sink.data) s->req->sink.data(s->req->sink.ctx, p, n);
}

/* The end tag "\n"? END_TAG<marker>__<digits>__\n" at pos: 1 complete (exit code parsed),
 * 0 incomplete (need more bytes), -1 not a tag. */
static int parse_tag(fg_stream *s, const char *p, size_t n, size_t *taglen)
{
    size_t cmp = n < s->taglen ? n : s->taglen;
    if (memcmp(p, s->tag, cmp) != 0) return -1;
    if (n <= s->taglen) return 0;
    size_t i = s->taglen;
    int code = 0, digits = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9' && digits < 4) code = code * 10 + (p[i++] - '0'), digits++;
    if (i == n) return 0;
    if (!digits) return -1;
    if (n - i < 3) return memcmp(p + i, "__\n", n - i) == 0 ? 0 : -1;
    if (memcmp(p + i, "__\n", 3) != 0) return -1;
    s->exit_code = code;
    *taglen = i + 3;
    return 1;
}

static int fg_out(void *ctx, const char *buf, size_t len)
{
    fg_stream *s = ctx;
    if (s->ended) return 1;
    if (!s->head_done) {
        while (len && !s->head_done) {
            char c = *buf++;
            len--;
            if (c == '\n' || s->headlen == sizeof s->head - 1) {
                s->head[s->headlen] = '\0';
                s->pid = strtol(s->head, NULL, 10);
                s->head_done = true;
            } else {
                s->head[s->headlen++] = c;
            }
        }
        if (!len) return 0;
    }
    /* Search hold + buf for the tag; keep back a suffix that could begin it. */
    size_t n = s->holdlen + len;
    char *all = sw_xmalloc(n);
    if (s->holdlen) memcpy(all, s->hold, s->holdlen);
    memcpy(all + s->holdlen, buf, len);
    size_t emit_to = n, keep_from = n;
    for (const char *p = all; (p = memchr(p, '_', (size_t)(all + n - p))); p++) {
        size_t at = (size_t)(p - all), tl = 0;
        int r = parse_tag(s, p, n - at, &tl);
        if (r == 1) {
            emit_to = at;
            s->ended = true;
            break;
        }
        if (r == 0) {
            emit_to = keep_from = at;
            break;
        }
    }
    fg_emit(s, all, emit_to);
    free(s->hold);
    s->hold = NULL;
    s->holdlen = 0;
    if (!s->ended && keep_from < n) {
        s->holdlen = n - keep_from;
        s->hold = sw_xmalloc(s->holdlen);
        memcpy(s->hold, all + keep_from, s->holdlen);
    }
    free(all);
    return s->ended ? 1 : 0;
}

static void fg_tick(void *ctx)
{
    fg_stream *s = ctx;
    if (s->req->sink.tick) s->req->sink.tick(s->req->sink.ctx);
}

/* Kills the trees of pids inside the sandbox; returns the survivors line's pids. */
static int kill_remote(sw_backend *b, const long *pids, size_t npids, int grace_ms,
                       long *survivors, size_t *nsurv)
{
    char list[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < npids && used < sizeof list - 24; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, " %ld", pids[i]);
    char *script = sw_printf("exec </dev/null 2>&1\n%s__sw_kill %d%s\n", KILL_FUNCS, grace_ms, list);
    char *out = NULL, err[256];
    int rc = run_capture(b, script, grace_ms + KILL_TIMEOUT_MS, &out, NULL, 65536, NULL, err, sizeof err);
    free(script);
    size_t n = 0;
    const char *s = out ? strstr(out, "survivors:") : NULL;
    if (rc != SW_TR_OK || !s) {
        sw_log(SW_LOG_WARNING, "%s: could not kill pids%s in the sandbox: %s", b->tr->name, list,
               rc == SW_TR_OK ? "no answer from the kill script" : err);
        free(out);
        return -1;
    }
    for (s += 10; *s && *s != '\n';) {
        char *end;
        long p = strtol(s, &end, 10);
        if (end == s) break;
        if (survivors && nsurv && n < *nsurv) survivors[n] = p;
        n++;
        s = end;
    }
    if (nsurv) *nsurv = n < *nsurv ? n : *nsurv;
    free(out);
    return 0;
}

/* A command's shell pid: when it leads its own session (an ssh channel's shell does),
 * whatever it left behind (`cmd &`) is found by session at close. */
static void remember_session(sw_backend *b, long pid)
{
    pthread_mutex_lock(&b->mu);
    bool known = false;
    for (size_t i = 0; i < b->nsessions && i < 256 && !known; i++) known = b->sessions[i] == pid;
    if (!known) b->sessions[b->nsessions++ % 256] = pid;
    pthread_mutex_unlock(&b->mu);
}

/* One attempt at running the command. */
static int run_once(sw_backend *b, const sw_run_req *req, sw_run_res *res)
{
    char *snap_in = NULL;
    int read_slot = snap_take(b, &snap_in);
    int out_slot = req->publish_state ? slot_take(b) : -1;
    char *snap_out = out_slot >= 0 ? slot_path(b, out_slot) : NULL;
    char *epilogue = sw_printf("builtin printf '%s%%s__\\n' \"$__sw_ec\"", b->tag);
    sw_script_opts so = {
        .command = req->command, .cwd = req->cwd, .snapshot = snap_in,
        .snapshot_out = snap_out, .marker_id = b->marker,
        .prologue = "exec </dev/null 2>&1; builtin printf '%s\\n' \"$$\"",
        .stdin_data = req->stdin_data, .epilogue = epilogue,
    };
    char *script = sw_script_wrap(&so);
    fg_stream s = {.req = req, .tag = b->tag, .taglen = strlen(b->tag)};
    sw_exec_req rq = {.script = script, .timeout_ms = req->timeout_ms, .cancel = req->cancel,
                      .out = fg_out, .tick = fg_tick, .ctx = &s};
    int ec = -1;
    pthread_rwlock_rdlock(&b->tlock);
    int rc = b->t ? b->tr->exec(b->t, &rq, &ec, res->error, sizeof res->error) : SW_TR_GONE;
    pthread_rwlock_unlock(&b->tlock);
    if (rc == SW_TR_INTERRUPTED && !s.ended) {
        if (req->cancel && sw_cancel_fired(req->cancel)) res->cancelled = true;
        else res->timed_out = true;
        if (s.pid > 0) kill_remote(b, &s.pid, 1, 0, NULL, NULL);
        res->exit_code = res->timed_out ? 124 : 130;
        rc = SW_TR_OK;
    } else if (s.ended) {
        res->exit_code = s.exit_code;
        rc = SW_TR_OK;
    } else if (rc == SW_TR_OK) {
        res->exit_code = ec;
    }
    if (!s.ended) fg_emit(&s, s.hold, s.holdlen);
    if (s.pid > 0) remember_session(b, s.pid);
    /* The end tag comes after the dump: only then is the slot a complete state. */
    slots_done(b, read_slot, out_slot, s.ended ? out_slot : -1);
    free(s.hold);
    free(script);
    free(epilogue);
    free(snap_in);
    free(snap_out);
    return rc;
}

int sw_remote_run(sw_backend *b, const sw_run_req *req, sw_run_res *res)
{
    bool recreated = false;
    int rc = ensure_connected(b, &recreated, res->error, sizeof res->error);
    if (rc == SW_TR_OK) {
        rc = run_once(b, req, res);
        if (rc == SW_TR_GONE && !recreated) {
            pthread_rwlock_wrlock(&b->tlock);
            rc = recreate_locked(b, res->error, sizeof res->error);
            pthread_rwlock_unlock(&b->tlock);
            if (rc == SW_TR_OK) {
                recreated = true;
                rc = run_once(b, req, res);
            }
        }
    }
    res->recreated = recreated && rc == SW_TR_OK;
    if (rc == SW_TR_OK) return SW_BE_OK;
    if (rc == SW_TR_ERROR) return SW_BE_ERROR;
    mark_broken(b);
    if (rc == SW_TR_GONE)
        snprintf(res->error, sizeof res->error, "the %s sandbox is gone and could not be recreated",
                 b->tr->name);
    return SW_BE_DEGRADED;
}

int sw_remote_health(sw_backend *b, char *err, size_t errlen)
{
    bool recreated = false;
    int rc = ensure_connected(b, &recreated, err, errlen);
    if (rc != SW_TR_OK) return -1;
    int ec = -1;
    rc = run_capture(b, "exec </dev/null 2>&1; :", 10000, NULL, NULL, 0, &ec, err, errlen);
    if (rc != SW_TR_OK) mark_broken(b);
    return rc == SW_TR_OK && ec == 0 ? 0 : -1;
}

/* ---- background processes ----------------------------------------------------------- */

static void bg_end(struct sw_bg *p, int code, bool lost)
{
    if (!p->running) return;
    p->running = false;
    p->lost = lost;
    p->exit_code = code;
    if (p->exit_path && !lost) {
        char line[32];
        int n = snprintf(line, sizeof line, "%d\n", code);
        int fd = open(p->exit_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            sw_write_all(fd, line, (size_t)n);
            close(fd);
        }
    }
    uint64_t one = 1;
    if (write(p->efd, &one, sizeof one) < 0) { /* counter full: already readable */ }
}

/* The status script: per process "<id> <state> <nbytes> <size>\n" then nbytes of new
 * output. state: "-" running, a number = exit status, "x" ended without one. */
static char *status_script(sw_backend *b, struct sw_bg **list, size_t n)
{
    size_t cap = 512 + n * 96;
    char *s = sw_xmalloc(cap);
    int len = snprintf(s, cap,
        "exec </dev/null 2>&1; cd %s/bg 2>/dev/null || { echo GONE; exit 0; }\n"
        "__sw_st() { local e=- z n; if [ -f $1.exit ]; then read -r e < $1.exit; e=${e:-x}; "
        "elif ! kill -0 $2 2>/dev/null; then [ -f $1.exit ] && { read -r e < $1.exit; e=${e:-x}; } || e=x; fi; "
        "z=$(stat -c %%s $1.log 2>/dev/null || echo 0); n=$((z-$3)); [ $n -lt 0 ] && n=0; "
        "[ $n -gt %d ] && n=%d; printf '%%s %%s %%s %%s\\n' $1 \"$e\" $n $z; "
        "[ $n -gt 0 ] && tail -c +$(($3+1)) $1.log | head -c $n; }\n",
        b->qdir, POLL_CHUNK, POLL_CHUNK);
    for (size_t i = 0; i < n; i++)
        len += snprintf(s + len, cap - (size_t)len, "__sw_st %s %ld %lld\n", list[i]->id, list[i]->pid,
                        list[i]->off);
    return s;
}

/* Applies one status answer. g_bg_mu held. Returns true when something changed. */
static bool apply_status(sw_backend *b, const char *out, size_t len, bool *all_gone)
{
    bool changed = false;
    const char *p = out, *end = out + len;
    if (len >= 4 && !memcmp(out, "GONE", 4)) {
        *all_gone = true;
        return true;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        char id[32], state[32];
        long long nbytes = 0, size = 0;
        char line[160];
        size_t ll = (size_t)(nl - p) < sizeof line - 1 ? (size_t)(nl - p) : sizeof line - 1;
        memcpy(line, p, ll);
        line[ll] = '\0';
        if (sscanf(line, "%31s %31s %lld %lld", id, state, &nbytes, &size) != 4 || nbytes < 0 ||
            nbytes > end - (nl + 1))
            break;
        const char *data = nl + 1;
        p = data + nbytes;
        struct sw_bg *bg = b->procs;
        while (bg && strcmp(bg->id, id) != 0) bg = bg->next;
        if (!bg || !bg->running) continue;
        if (nbytes > 0) {
            sw_write_all(bg->log_fd, data, (size_t)nbytes);
            bg->off += nbytes;
            changed = true;
        }
        if (strcmp(state, "-") != 0 && bg->off >= size) {
            bg_end(bg, state[0] == 'x' ? -1 : atoi(state), false);
            changed = true;
        }
    }
    return changed;
}

static void *poller_main(void *arg)
{
    sw_backend *b = arg;
    int interval = POLL_MIN_MS;
    pthread_mutex_lock(&g_bg_mu);
    while (!b->stopping) {
        size_t n = 0;
        for (struct sw_bg *p = b->procs; p; p = p->next) n += p->running;
        if (!n) {
            pthread_cond_wait(&b->poll_cv, &g_bg_mu);
            interval = POLL_MIN_MS;
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)interval * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (pthread_cond_timedwait(&b->poll_cv, &g_bg_mu, &ts) == 0) interval = POLL_MIN_MS;
        if (b->stopping) break;
        struct sw_bg **list = sw_xcalloc(n + 1, sizeof *list);
        n = 0;
        for (struct sw_bg *p = b->procs; p; p = p->next)
            if (p->running) list[n++] = p;
        char *script = status_script(b, list, n);
        free(list);
        pthread_mutex_unlock(&g_bg_mu);
        char *out = NULL, err[256];
        size_t len = 0;
        int rc = run_capture(b, script, 30000, &out, &len, n * (POLL_CHUNK + 128) + 64, NULL, err, sizeof err);
        free(script);
        pthread_mutex_lock(&g_bg_mu);
        bool gone = rc == SW_TR_GONE, changed = false;
        if (rc == SW_TR_OK) changed = apply_status(b, out, len, &gone);
        if (gone) {
            for (struct sw_bg *p = b->procs; p; p = p->next) bg_end(p, -1, true);
        }
        free(out);
        if (changed) interval = POLL_MIN_MS;
        else if ((interval *= 2) > POLL_MAX_MS) interval = POLL_MAX_MS;
    }
    pthread_mutex_unlock(&g_bg_mu);
    return NULL;
}

int sw_remote_bg_spawn(sw_backend *b, const sw_bg_req *req, sw_bg **out, sw_bg_info *info,
                       char *err, size_t errlen)
{
    if (req->pty) {
        snprintf(err, errlen, "pty: true is only available on the local backend; the %s backend runs "
                              "background commands without a terminal (omit pty)", b->tr->name);
        return SW_BE_ERROR;
    }
    bool recreated = false;
    int rc = ensure_connected(b, &recreated, err, errlen);
    if (rc != SW_TR_OK) return be_status(rc == SW_TR_GONE ? SW_TR_DEGRADED : rc);
    int log_fd = open(req->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", req->log_path, strerror(errno));
        return SW_BE_ERROR;
    }
    char id[17], eof_word[17];
    sw_random_hex(id, 8);
    sw_random_hex(eof_word, 8);
    char *base = sw_printf("%s/bg/%s", b->dir, id);
    char *exit_file = sw_printf("%s.exit", base);
    char *snap_in = NULL;
    int read_slot = snap_take(b, &snap_in);
    char *bg_snap = sw_printf("%s.snap", base);
    char *body = sw_script_background(req->command, req->stdin_data, req->cwd, bg_snap, exit_file,
                                      NULL, NULL);
    char *qbase = sw_shell_quote(base), *qsnap = sw_shell_quote(snap_in);
    /* The script goes to a file through a here-document, so nothing of it (a sudo password
     * included) shows on a command line; `set -m` gives the process its own group. */
    char *script = sw_printf(
        "exec </dev/null 2>&1; umask 077; mkdir -p %s/bg || exit 1\n"
        "cat > %s.sh <<'SW_%s'\n%sSW_%s\n"
        "__sw_c=; IFS= read -r -d '' __sw_c < %s; builtin printf '%%s' \"$__sw_c\" > %s.snap\n"
        "set -m; bash %s.sh > %s.log 2>&1 < /dev/null &\n"
        "builtin printf 'pid:%%s\\n' \"$!\"\n",
        b->qdir, qbase, eof_word, body, eof_word, qsnap, qbase, qbase, qbase);
    char *outbuf = NULL;
    int ec = -1;
    rc = run_capture(b, script, SETUP_TIMEOUT_MS, &outbuf, NULL, 4096, &ec, err, errlen);
    long pid = 0;
    const char *pl = outbuf ? strstr(outbuf, "pid:") : NULL;
    if (pl) pid = strtol(pl + 4, NULL, 10);
    slots_done(b, read_slot, -1, -1);   /* the process has its own copy now */
    free(script);
    free(qbase);
    free(qsnap);
    free(snap_in);
    free(bg_snap);
    free(body);
    free(exit_file);
    free(base);
    if (rc != SW_TR_OK || pid <= 0) {
        if (rc == SW_TR_OK) snprintf(err, errlen, "could not start the command in the %s sandbox: %.200s",
                                     b->tr->name, outbuf ? outbuf : "");
        free(outbuf);
        close(log_fd);
        if (rc != SW_TR_OK && rc != SW_TR_ERROR) mark_broken(b);
        return rc == SW_TR_OK ? SW_BE_ERROR : be_status(rc == SW_TR_GONE ? SW_TR_DEGRADED : rc);
    }
    free(outbuf);
    struct sw_bg *p = sw_xcalloc(1, sizeof *p);
    p->b = b;
    memcpy(p->id, id, sizeof p->id);
    p->pid = pid;
    p->log_fd = log_fd;
    p->exit_path = sw_strdup(req->exit_path);
    p->running = true;
    p->exit_code = -1;
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_lock(&g_bg_mu);
    p->next = b->procs;
    b->procs = p;
    if (!b->poller_started && pthread_create(&b->poller, NULL, poller_main, b) == 0) b->poller_started = true;
    pthread_cond_signal(&b->poll_cv);
    pthread_mutex_unlock(&g_bg_mu);
    info->pid = pid;
    info->start_time = 0;
    info->pty_fd = -1;
    info->exit_fd = p->efd;
    *out = p;
    return SW_BE_OK;
}

void sw_remote_bg_status(sw_bg *p, sw_bg_state *st)
{
    pthread_mutex_lock(&g_bg_mu);
    st->running = p->running;
    st->lost = p->lost;
    st->exit_code = p->running ? -1 : p->exit_code;
    pthread_mutex_unlock(&g_bg_mu);
}

int sw_remote_bg_write(sw_bg *p, const char *data, size_t len, bool eof)
{
    (void)p;
    (void)data;
    (void)len;
    (void)eof;
    errno = ENOTTY;
    return -1;
}

int sw_remote_bg_kill(sw_bg *p, int grace_ms, long *survivors, size_t *nsurv)
{
    pthread_mutex_lock(&g_bg_mu);
    sw_backend *b = p->b;
    long pid = p->pid;
    bool running = p->running;
    pthread_mutex_unlock(&g_bg_mu);
    if (!b || !running) {
        if (nsurv) *nsurv = 0;
        return 0;
    }
    int rc = kill_remote(b, &pid, 1, grace_ms, survivors, nsurv);
    pthread_mutex_lock(&g_bg_mu);
    pthread_cond_signal(&b->poll_cv);   /* look again now */
    pthread_mutex_unlock(&g_bg_mu);
    return rc;
}

void sw_remote_bg_free(sw_bg *p)
{
    pthread_mutex_lock(&g_bg_mu);
    if (p->b) {
        struct sw_bg **pp = &p->b->procs;
        while (*pp && *pp != p) pp = &(*pp)->next;
        if (*pp) *pp = p->next;
    }
    pthread_mutex_unlock(&g_bg_mu);
    if (p->log_fd >= 0) close(p->log_fd);
    if (p->efd >= 0) close(p->efd);
    free(p->exit_path);
    free(p);
}

/* ---- close -------------------------------------------------------------------------- */

void sw_remote_close(sw_backend *b)
{
    pthread_mutex_lock(&g_bg_mu);
    b->stopping = true;
    pthread_cond_broadcast(&b->poll_cv);
    bool joined = b->poller_started;
    pthread_mutex_unlock(&g_bg_mu);
    if (joined) pthread_join(b->poller, NULL);
    /* Whatever still runs in the sandbox goes, then the environment's directory. */
    long pids[64];
    size_t n = 0;
    pthread_mutex_lock(&g_bg_mu);
    for (struct sw_bg *p = b->procs; p; p = p->next) {
        if (p->running && n < 64) pids[n++] = p->pid;
        bg_end(p, -1, true);
        p->b = NULL;
    }
    b->procs = NULL;
    pthread_mutex_unlock(&g_bg_mu);
    if (b->t) {
        if (n) kill_remote(b, pids, n, 0, NULL, NULL);
        char sids[256 * 12] = "";
        size_t used = 0, ns = b->nsessions < 256 ? b->nsessions : 256;
        for (size_t i = 0; i < ns; i++)
            used += (size_t)snprintf(sids + used, sizeof sids - used, " %ld", b->sessions[i]);
        char *script = sw_printf("exec </dev/null 2>&1\n%s%s%s\nrm -rf %s", KILL_FUNCS,
                                 ns ? "__sw_sessions" : "", sids, b->qdir);
        char err[128];
        run_capture(b, script, 2000, NULL, NULL, 0, NULL, err, sizeof err);
        free(script);
        pthread_rwlock_wrlock(&b->tlock);   /* after every exec still in flight */
        b->tr->close(b->t);
        b->t = NULL;
        pthread_rwlock_unlock(&b->tlock);
    }
    pthread_rwlock_destroy(&b->tlock);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->poll_cv);
    free(b->dir);
    free(b->qdir);
    free(b->snapshot);
    free(b->marker);
    free(b->tag);
    free(b->o_task);
    free(b->o_state);
    free(b->o_cwd);
    free(b);
}
