/* backends/local.c — the local backend: every command is a fresh bash on this host, in its
 * own session, running the shared wrapper script.
 *
 * Two things keep a call close to the cost of running the command itself:
 *  - Spare shells. The environment keeps one bash that is already running, has already
 *    sourced the snapshot, and is blocked reading its script from a pipe (". /dev/fd/3").
 *    A call writes the script, closes the pipe and reads the output; while the command
 *    runs, the next spare starts. Snapshot generations tell whether the spare loaded the
 *    current state; if not, its script sources the snapshot again.
 *  - Answering before the state dump. The script reports the exit code on a status pipe
 *    (fd 4) right after printing the cwd marker, then dumps variables, functions and
 *    aliases, then reports "D". The call answers at the exit code; the shell is kept as
 *    "finishing" and settled (dump published, shell reaped) before the next command of
 *    the environment runs, or right after the answer was written.
 * Every command still gets a fresh process: nothing leaks between calls except the state
 * the wrapper carries on purpose. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/local.h"
#include "backends/script.h"
#include "server/config.h"
#include "server/log.h"
#include "server/util.h"

#define READ_CHUNK (256 * 1024)
#define POST_EXIT_DRAIN_MS 200   /* bound on reading after the shell exited */
#define SETTLE_TIMEOUT_MS 5000   /* bound on waiting for a state dump */
#define SNAPSHOT_TIMEOUT_MS 15000
#define STATUS_FD 4

typedef struct shell {
    sw_child *child;
    unsigned long gen;  /* snapshot generation the shell loaded before its script */
    int script_fd;      /* write end: the script goes here, then EOF */
    int out_fd;         /* read end of merged stdout/stderr, non-blocking */
    int status_fd;      /* read end of the status pipe, non-blocking */
    char status[32];    /* what arrived on the status pipe so far */
    size_t status_len;
    char *snap_out;     /* where its script dumps the state (owned), or NULL */
} shell;

struct sw_backend {
    pthread_mutex_t mu;
    pthread_mutex_t settle_mu;  /* held for a whole settle(): "settled" must mean published */
    char *dir;
    char *snapshot;
    char *marker;
    char *bash;
    char **env;         /* the server's environment for commands (first snapshot only) */
    char *preload;      /* the spare's program: load the snapshot, then wait for a script */
    char **wrap;        /* argv prefix every shell runs under (a sandbox), or NULL; owned */
    shell spare;
    bool have_spare;
    pthread_t maker;       /* starts spare shells, so no call waits for posix_spawn */
    pthread_cond_t maker_cv;
    bool want_spare, stopping, maker_started;
    shell *finishing;   /* answered, still writing their state dump */
    size_t nfinishing, capfinishing;
    unsigned long seq;
    unsigned long gen;  /* bumped whenever a command changes the snapshot */
    bool dump_failing;  /* the last state dump was cut short (logged once) */
};

static char *find_bash(void)
{
    const char *path = getenv("PATH");
    if (path) {
        char *copy = sw_strdup(path), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            char *cand = sw_printf("%s/bash", d);
            if (d[0] == '/' && access(cand, X_OK) == 0) { free(copy); return cand; }
            free(cand);
        }
        free(copy);
    }
    return sw_strdup(access("/usr/bin/bash", X_OK) == 0 ? "/usr/bin/bash" : "/bin/bash");
}

static void shell_close(shell *sh)
{
    if (sh->script_fd >= 0) close(sh->script_fd);
    if (sh->out_fd >= 0) close(sh->out_fd);
    if (sh->status_fd >= 0) close(sh->status_fd);
    sw_child_free(sh->child);   /* kills it if it still runs */
    if (sh->snap_out) unlink(sh->snap_out);
    free(sh->snap_out);
    memset(sh, 0, sizeof *sh);
    sh->script_fd = sh->out_fd = sh->status_fd = -1;
}

static int shell_spawn(sw_backend *b, bool login, shell *sh, char *err, size_t errlen)
{
    int out[2] = {-1, -1}, scr[2] = {-1, -1}, st[2] = {-1, -1};
    memset(sh, 0, sizeof *sh);
    sh->script_fd = sh->out_fd = sh->status_fd = -1;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(scr, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    /* A bigger pipe means fewer wake-ups when a command prints a lot. */
    fcntl(out[1], F_SETPIPE_SZ, 1024 * 1024);
    char *argv_login[] = {b->bash, "-l", "-c", ". /dev/fd/3", NULL};
    char *argv_plain[] = {b->bash, "-c", b->preload, NULL};
    char **argv = sw_local_argv(b, login ? argv_login : argv_plain);
    pthread_mutex_lock(&b->mu);
    sh->gen = b->gen;
    pthread_mutex_unlock(&b->mu);
    sw_spawn sp = {
        .path = argv[0], .argv = argv, .envp = login ? b->env : sw_local_shell_env(b),
        .cwd = "/", .fd_in = -1, .fd_out = out[1], .fd3 = scr[0], .fd4 = st[1],
    };
    sh->child = sw_proc_spawn(&sp, err, errlen);
    free(argv);
    if (!sh->child) goto fail;
    close(out[1]);
    close(scr[0]);
    close(st[1]);
    sw_set_nonblock(out[0]);
    sw_set_nonblock(st[0]);
    sh->out_fd = out[0];
    sh->script_fd = scr[1];
    sh->status_fd = st[0];
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0) close(out[i]);
        if (scr[i] >= 0) close(scr[i]);
        if (st[i] >= 0) close(st[i]);
    }
    return -1;
}

/* Takes the spare shell if it is alive and loaded the current snapshot, else starts a
 * new shell. Either way the shell has sourced the current snapshot and waits for its
 * script. A spare with an older state cannot be brought up to date by sourcing the new
 * snapshot on top: what the newer state removed would survive. */
static int shell_get(sw_backend *b, shell *sh, char *err, size_t errlen)
{
    pthread_mutex_lock(&b->mu);
    bool have = b->have_spare;
    bool current = have && b->spare.gen == b->gen;
    if (have) { *sh = b->spare; b->have_spare = false; }
    pthread_mutex_unlock(&b->mu);
    if (have) {
        if (current && !sw_child_done(sh->child, NULL)) return 0;
        shell_close(sh);
    }
    return shell_spawn(b, false, sh, err, errlen);
}

/* The spare-maker thread: whenever a spare is wanted and none is there, start one. */
static void *maker_main(void *arg)
{
    sw_backend *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->stopping && (!b->want_spare || b->have_spare))
            pthread_cond_wait(&b->maker_cv, &b->mu);
        if (b->stopping) break;
        b->want_spare = false;
        pthread_mutex_unlock(&b->mu);
        shell sh;
        char err[256];
        int rc = shell_spawn(b, false, &sh, err, sizeof err);
        if (rc < 0) sw_warn("local: cannot pre-start a shell: %s", err);
        pthread_mutex_lock(&b->mu);
        if (rc == 0) {
            if (!b->have_spare && !b->stopping) {
                b->spare = sh;
                b->have_spare = true;
            } else {
                pthread_mutex_unlock(&b->mu);
                shell_close(&sh);
                pthread_mutex_lock(&b->mu);
            }
        }
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* Asks the maker thread for a spare shell; returns at once. */
static void request_spare(sw_backend *b)
{
    pthread_mutex_lock(&b->mu);
    b->want_spare = true;
    pthread_cond_signal(&b->maker_cv);
    pthread_mutex_unlock(&b->mu);
}

/* Reads what is available now; returns 0 at EOF, 1 if more may come, -1 on error. */
static int drain(int fd, char *buf, const sw_sink *sink)
{
    for (;;) {
        ssize_t r = read(fd, buf, READ_CHUNK);
        if (r > 0) { if (sink && sink->data) sink->data(sink->ctx, buf, (size_t)r); continue; }
        if (r == 0) return 0;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return 1;
        return -1;
    }
}

/* Appends what the status pipe holds to sh->status. */
static void read_status(shell *sh)
{
    for (;;) {
        if (sh->status_len + 1 >= sizeof sh->status) {   /* garbage: stop listening */
            close(sh->status_fd);
            sh->status_fd = -1;
            return;
        }
        ssize_t r = read(sh->status_fd, sh->status + sh->status_len,
                         sizeof sh->status - 1 - sh->status_len);
        if (r > 0) { sh->status_len += (size_t)r; sh->status[sh->status_len] = '\0'; continue; }
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) { close(sh->status_fd); sh->status_fd = -1; }
        return;
    }
}

static bool started(const shell *sh) { return strncmp(sh->status, "S\n", 2) == 0; }

/* The exit code reported on the status pipe, or -1 if none (yet). */
static int reported_code(const shell *sh)
{
    if (!started(sh)) return -1;
    const char *line = sh->status + 2;
    const char *nl = memchr(line, '\n', sh->status_len - 2);
    if (!nl || nl == line) return -1;
    int code = 0;
    for (const char *p = line; p < nl; p++) {
        if (*p < '0' || *p > '9' || code > 1000) return -1;
        code = code * 10 + (*p - '0');
    }
    return code;
}

static bool dump_done(const shell *sh) { return strstr(sh->status, "\nD\n") != NULL; }

enum follow_end { ENDED_EXIT, ENDED_REPORTED };

/* Feeds `script` to a started shell and follows it until it reports its exit code or
 * exits. `b`, when given, gets a new spare shell started while the command runs. */
static enum follow_end follow(sw_backend *b, shell *sh, const char *script,
                              const sw_run_req *req, sw_run_res *res, int *status)
{
    char *buf = sw_xmalloc(READ_CHUNK);
    if (sw_write_all(sh->script_fd, script, strlen(script)) < 0)
        sw_debug("local: script write failed: %s", strerror(errno));
    close(sh->script_fd);
    sh->script_fd = -1;
    if (b) request_spare(b);

    int64_t start = sw_now_ms();
    int64_t deadline = req->timeout_ms > 0 ? start + req->timeout_ms : -1;
    int64_t next_tick = start + 1000;
    bool killed = false;
    enum follow_end end = ENDED_EXIT;
    for (;;) {
        struct pollfd p[4];
        int np = 0, i_out = -1, i_st = -1, i_cancel = -1;
        p[np].fd = sw_child_fd(sh->child); p[np++].events = POLLIN;
        if (sh->out_fd >= 0) { i_out = np; p[np].fd = sh->out_fd; p[np++].events = POLLIN; }
        if (sh->status_fd >= 0 && !killed) { i_st = np; p[np].fd = sh->status_fd; p[np++].events = POLLIN; }
        if (req->cancel && !killed) { i_cancel = np; p[np].fd = req->cancel->fd; p[np++].events = POLLIN; }
        int64_t now = sw_now_ms(), wake = next_tick;
        if (deadline >= 0 && !killed && deadline < wake) wake = deadline;
        int r = poll(p, (nfds_t)np, wake > now ? (int)(wake - now) : 0);
        if (r < 0 && errno != EINTR) break;
        if (i_out >= 0 && (p[i_out].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (drain(sh->out_fd, buf, &req->sink) <= 0) { close(sh->out_fd); sh->out_fd = -1; }
        }
        if (i_st >= 0 && (p[i_st].revents & (POLLIN | POLLHUP | POLLERR))) {
            read_status(sh);
            if (reported_code(sh) >= 0) {
                /* The marker and all output before it are in the pipe already. */
                if (sh->out_fd >= 0) drain(sh->out_fd, buf, &req->sink);
                end = ENDED_REPORTED;
                break;
            }
        }
        if (sw_child_done(sh->child, status)) break;
        if (i_cancel >= 0 && (p[i_cancel].revents & POLLIN) && !killed) {
            res->cancelled = killed = true;
            sw_proc_kill_tree(sw_child_pid(sh->child));
            continue;
        }
        now = sw_now_ms();
        if (deadline >= 0 && now >= deadline && !killed) {
            res->timed_out = killed = true;
            sw_proc_kill_tree(sw_child_pid(sh->child));
            continue;
        }
        if (now >= next_tick) {
            if (req->sink.tick) req->sink.tick(req->sink.ctx);
            next_tick = now + 1000;
        }
    }
    if (end == ENDED_EXIT) {
        if (!sw_child_done(sh->child, status)) sw_child_wait(sh->child, 2000);
        sw_child_done(sh->child, status);
        /* The shell is gone: everything it wrote is in the pipe. Read it, but do not wait
         * for background grandchildren that still hold the write end. */
        int64_t stop = sw_now_ms() + POST_EXIT_DRAIN_MS;
        while (sh->out_fd >= 0 && sw_now_ms() < stop) {
            if (drain(sh->out_fd, buf, &req->sink) != 1) break;
            struct pollfd p = {.fd = sh->out_fd, .events = POLLIN};
            if (poll(&p, 1, 0) <= 0) break;
        }
        if (sh->status_fd >= 0) read_status(sh);
    }
    free(buf);
    return end;
}

/* True when the files differ (or one cannot be read). Snapshots are a few KB. */
static bool files_differ(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rbe"), *fb = fopen(b, "rbe");
    bool differ = !fa || !fb;
    char x[8192], y[8192];
    while (!differ) {
        size_t na = fread(x, 1, sizeof x, fa), nb = fread(y, 1, sizeof y, fb);
        if (na != nb || memcmp(x, y, na)) differ = true;
        if (na < sizeof x) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return differ;
}

/* True when the dump at `path` ends with the lines the state dump writes last
 * (DUMP_STATE in backends/script.c). A dump cut short by a full disk does not: the
 * shell reports "D" whether or not its writes succeeded. */
static bool dump_complete(const char *path)
{
    static const char tail[] = "shopt -s expand_aliases\nset +e\nset +u\n";
    size_t n = sizeof tail - 1;
    char buf[sizeof tail];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && st.st_size >= (off_t)n &&
              pread(fd, buf, n, st.st_size - (off_t)n) == (ssize_t)n && !memcmp(buf, tail, n);
    close(fd);
    return ok;
}

/* Publishes the shell's state dump if it completed and differs from the current
 * snapshot, so spare shells that loaded the current one stay valid. An incomplete dump
 * is never published: the session keeps its previous state rather than losing it all. */
static void publish(sw_backend *b, shell *sh)
{
    if (!sh->snap_out || !dump_done(sh)) return;
    bool complete = dump_complete(sh->snap_out);
    pthread_mutex_lock(&b->mu);
    if (!complete) {
        if (!b->dump_failing)
            sw_warn("local: cannot save the session state to %s (is the disk full?); the "
                    "previous state is kept and this call's changes to variables, functions "
                    "and aliases are lost. (Not repeated until it works again.)", b->dir);
        b->dump_failing = true;
    } else {
        b->dump_failing = false;
        if (files_differ(sh->snap_out, b->snapshot) && rename(sh->snap_out, b->snapshot) == 0) {
            b->gen++;
            sw_debug("local: the state changed (generation %lu)", b->gen);
        }
    }
    pthread_mutex_unlock(&b->mu);
}

/* Waits for answered shells to finish their state dump, publishes it and closes them. */
static void settle(sw_backend *b)
{
    pthread_mutex_lock(&b->settle_mu);
    for (;;) {
        shell sh;
        pthread_mutex_lock(&b->mu);
        bool have = b->nfinishing > 0;
        if (have) sh = b->finishing[--b->nfinishing];
        pthread_mutex_unlock(&b->mu);
        if (!have) break;
        int64_t stop = sw_now_ms() + SETTLE_TIMEOUT_MS;
        while (!dump_done(&sh) && sh.status_fd >= 0 && !sw_child_done(sh.child, NULL)) {
            int64_t left = stop - sw_now_ms();
            if (left <= 0) break;
            struct pollfd p[2] = {{.fd = sh.status_fd, .events = POLLIN},
                                  {.fd = sw_child_fd(sh.child), .events = POLLIN}};
            if (poll(p, 2, (int)left) > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
                read_status(&sh);
        }
        if (sh.status_fd >= 0) read_status(&sh);
        if (!dump_done(&sh)) sw_warn("local: a command's state dump did not complete; its changes are not kept");
        publish(b, &sh);
        /* The command has ended; output of leftover background children is dropped and
         * the shell is reaped (it exits right after its dump). */
        if (!sw_child_done(sh.child, NULL)) sw_child_wait(sh.child, 200);
        shell_close(&sh);
    }
    pthread_mutex_unlock(&b->settle_mu);
}

int sw_local_run(sw_backend *b, const sw_run_req *req, sw_run_res *res)
{
    settle(b);   /* earlier commands' state first */
    shell sh;
    if (shell_get(b, &sh, res->error, sizeof res->error) < 0) return SW_BE_ERROR;
    pthread_mutex_lock(&b->mu);
    unsigned long seq = ++b->seq;
    pthread_mutex_unlock(&b->mu);
    sh.snap_out = req->publish_state ? sw_printf("%s/snapshot.%lu.tmp", b->dir, seq) : NULL;
    sw_script_opts so = {
        .command = req->command, .cwd = req->cwd,
        .snapshot = NULL,   /* the shell has loaded it already */
        .snapshot_out = sh.snap_out, .marker_id = b->marker,
        .prologue = "exec 3<&-", .stdin_data = req->stdin_data, .status_fd = STATUS_FD,
    };
    char *script = sw_script_wrap(&so);
    int status = 0;
    enum follow_end end = follow(b, &sh, script, req, res, &status);
    free(script);
    if (res->timed_out) res->exit_code = 124;
    else if (res->cancelled) res->exit_code = 130;
    else if (reported_code(&sh) >= 0) res->exit_code = reported_code(&sh);
    else res->exit_code = sw_exit_code(status);

    if (end == ENDED_REPORTED) {
        /* Answer now; the dump is settled before the next command or after the answer. */
        pthread_mutex_lock(&b->mu);
        if (b->nfinishing == b->capfinishing)
            b->finishing = sw_xrealloc(b->finishing, (b->capfinishing = b->capfinishing ? 2 * b->capfinishing : 4) * sizeof *b->finishing);
        b->finishing[b->nfinishing++] = sh;
        pthread_mutex_unlock(&b->mu);
        return SW_BE_OK;
    }
    if (!res->timed_out && !res->cancelled && !started(&sh)) {
        /* The script never ran: bash (or the sandbox around it) failed to start. */
        snprintf(res->error, sizeof res->error, "the %s did not start (exit status %d)",
                 b->wrap ? "sandboxed shell" : "shell", res->exit_code);
        shell_close(&sh);
        return SW_BE_ERROR;
    }
    if (!res->timed_out && !res->cancelled) publish(b, &sh);
    shell_close(&sh);
    return SW_BE_OK;
}

void sw_local_prepare(sw_backend *b)
{
    settle(b);
    request_spare(b);
}

/* Captures the first snapshot from a login shell, so profile settings apply. */
static void capture_snapshot(sw_backend *b)
{
    char *tmp = sw_printf("%s/snapshot.init.tmp", b->dir);
    char *script = sw_script_snapshot_init(tmp, "exec 3<&- 4>&-");
    shell sh;
    char err[256];
    int status = -1;
    if (shell_spawn(b, true, &sh, err, sizeof err) == 0) {
        sw_run_req req = {.timeout_ms = SNAPSHOT_TIMEOUT_MS};
        sw_run_res res = {0};
        follow(NULL, &sh, script, &req, &res, &status);
        shell_close(&sh);
        if (res.timed_out) sw_warn("local: login shell took too long; starting from a bare environment");
    } else {
        sw_warn("local: %s", err);
    }
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || rename(tmp, b->snapshot) < 0) {
        /* No login snapshot: export the server's environment as it is. */
        unlink(tmp);
        FILE *f = fopen(b->snapshot, "we");
        if (f) {
            for (char **e = b->env; *e; e++) {
                const char *eq = strchr(*e, '=');
                if (!eq || eq == *e) continue;
                char *v = sw_shell_quote(eq + 1);
                fprintf(f, "export %.*s=%s\n", (int)(eq - *e), *e, v);
                free(v);
            }
            fputs("shopt -s expand_aliases\nset +e\nset +u\n", f);
            if (fclose(f) != 0) {
                /* A cut snapshot would leave commands without PATH, HOME and the rest;
                 * with none, shells get the server's environment (sw_local_shell_env). */
                sw_warn("local: cannot write the snapshot %s: %s; commands get the server's "
                        "environment until a state dump can be saved", b->snapshot, strerror(errno));
                unlink(b->snapshot);
            }
        }
    }
    free(script);
    free(tmp);
}


char **sw_local_argv(sw_backend *b, char *const *tail)
{
    size_t nw = 0, nt = 0;
    while (b->wrap && b->wrap[nw]) nw++;
    while (tail[nt]) nt++;
    char **v = sw_xcalloc(nw + nt + 1, sizeof *v);
    for (size_t i = 0; i < nw; i++) v[i] = b->wrap[i];
    for (size_t i = 0; i < nt; i++) v[nw + i] = tail[i];
    return v;
}

static int local_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    char **wrap = NULL;
    if (o->config && strcmp(o->config->confine, "off") != 0) {
        wrap = sw_landlock_wrap(o->config->state_dir, o->state_dir, o->config->hide_paths);
        if (!wrap) {
            snprintf(err, errlen, "cannot find the shellwire binary to confine commands with");
            return SW_BE_ERROR;
        }
    }
    return sw_local_open_wrapped(o, wrap, out, err, errlen);
}

int sw_local_open_wrapped(const sw_open_opts *o, char **wrap, sw_backend **out, char *err,
                          size_t errlen)
{
    sw_backend *b = sw_xcalloc(1, sizeof *b);
    b->wrap = wrap;
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->settle_mu, NULL);
    pthread_cond_init(&b->maker_cv, NULL);
    b->dir = sw_strdup(o->state_dir);
    b->snapshot = sw_printf("%s/snapshot.sh", o->state_dir);
    b->marker = sw_strdup(o->marker_id);
    b->bash = find_bash();
    char *q = sw_shell_quote(b->snapshot);
    b->preload = sw_printf("source %s >/dev/null 2>&1; . /dev/fd/3", q);
    free(q);
    size_t n = 0;
    while (o->child_env && o->child_env[n]) n++;
    b->env = sw_xcalloc(n + 1, sizeof *b->env);
    for (size_t i = 0; i < n; i++) b->env[i] = sw_strdup(o->child_env[i]);
    if (sw_mkdir_p(b->dir, 0700) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", b->dir, strerror(errno));
        sw_local_close(b);
        return SW_BE_ERROR;
    }
    if (access(b->bash, X_OK) < 0) {
        snprintf(err, errlen, "bash not found (looked in PATH, /usr/bin, /bin)");
        sw_local_close(b);
        return SW_BE_ERROR;
    }
    if (access(b->snapshot, R_OK) < 0) capture_snapshot(b);
    if (pthread_create(&b->maker, NULL, maker_main, b) != 0) {
        snprintf(err, errlen, "cannot start a thread: %s", strerror(errno));
        sw_local_close(b);
        return SW_BE_ERROR;
    }
    b->maker_started = true;
    request_spare(b);
    *out = b;
    return SW_BE_OK;
}

int sw_local_health(sw_backend *b, char *err, size_t errlen)
{
    if (access(b->bash, X_OK) == 0) return 0;
    snprintf(err, errlen, "%s is not executable", b->bash);
    return -1;
}

void sw_local_close(sw_backend *b)
{
    if (!b) return;
    if (b->maker_started) {
        pthread_mutex_lock(&b->mu);
        b->stopping = true;
        pthread_cond_signal(&b->maker_cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->maker, NULL);
    }
    settle(b);
    if (b->have_spare) shell_close(&b->spare);
    free(b->finishing);
    for (char **e = b->env; e && *e; e++) free(*e);
    free(b->env);
    free(b->dir);
    free(b->snapshot);
    free(b->marker);
    free(b->bash);
    free(b->preload);
    for (char **w = b->wrap; w && *w; w++) free(*w);
    free(b->wrap);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->settle_mu);
    pthread_cond_destroy(&b->maker_cv);
    free(b);
}

const char *sw_local_bash(sw_backend *b) { return b->bash; }
void sw_local_settle(sw_backend *b) { settle(b); }
const char *sw_local_snapshot(sw_backend *b) { return b->snapshot; }

char *const *sw_local_shell_env(sw_backend *b)
{
    /* Normally empty: the snapshot alone decides what is exported, so an `unset` sticks.
     * Without a snapshot (it could not be written: a full disk) a shell would have no
     * PATH, HOME or anything else, so it gets the server's environment instead. */
    static char *no_env[] = {NULL};
    return access(b->snapshot, F_OK) == 0 ? no_env : b->env;
}

const sw_backend_ops sw_local_ops = SW_LOCAL_FAMILY_OPS("local", local_open, false);
