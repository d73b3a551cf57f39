/* backends/singularity.c — the singularity transport: Apptainer (or SingularityCE) driven
 * through its command line. The remote layer (backends/remote.c) does everything else.
 *
 * connect  finds `apptainer`, else `singularity`, on PATH and resolves the image
 *          (TERMINAL_SINGULARITY_IMAGE): a local file is used as is; a reference such as
 *          docker://python:3.12 is built once into a SIF cached in
 *          <TERMINAL_SCRATCH_DIR | $APPTAINER_CACHEDIR | state directory>/shellwire-images,
 *          under a lock file so that concurrent environments and servers build it once
 *          (the build writes a temporary name that is renamed when complete). Then it
 *          starts the environment's own instance:
 *            apptainer instance start --containall --no-home --writable-tmpfs SIF NAME
 *          (--containall: private /tmp, /dev, pid and ipc namespaces, clean environment;
 *          --writable-tmpfs: writes land in a tmpfs that goes away with the instance).
 * exec     runs `apptainer exec --cleanenv instance://NAME bash -c '. /proc/self/fd/0'`
 *          with the script on stdin, never on a command line (it may carry a sudo
 *          password). Sourcing reads the whole script before running any of it, so the
 *          script's own `exec </dev/null` cannot cut it short. The container's stdout is
 *          the command's merged output; the CLI's own stderr (warnings, FATAL lines) is kept
 *          apart and only explains failures: "no instance found", or any failure after
 *          which `instance list` no longer shows the instance, means the sandbox is gone.
 * close    `apptainer instance stop --force NAME`, bounded; nothing in the instance needs
 *          to survive it.
 *
 * sw_proc_spawn gives a child one descriptor for both stdout and stderr, so the CLI runs
 * under a /bin/sh trampoline that moves a third pipe onto its stderr and then execs it. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/remote.h"
#include "server/config.h"
#include "server/log.h"
#include "server/util.h"

#define CLI_TIMEOUT_MS 15000               /* instance list */
#define STOP_TIMEOUT_MS 2000               /* instance stop, at close */
#define BUILD_TIMEOUT_MS (30 * 60 * 1000)  /* pulling and converting a large image */
#define DEFAULT_CONNECT_MS 30000
#define LINGER_MS 2000        /* how long a finished exec may take to exit before it is killed */
#define POST_EXIT_DRAIN_MS 200
#define READ_CHUNK (64 * 1024)
#define CAPTURE_MAX (256 * 1024)
#define ERR_KEEP 4096

struct sw_transport {
    pthread_mutex_t mu;   /* guards name: recreate replaces it while execs may run */
    char *cli;            /* absolute path of apptainer or singularity */
    char *ref;            /* TERMINAL_SINGULARITY_IMAGE as configured */
    char *cache_dir;      /* where built images go */
    char *image;          /* the local image the instance runs */
    char *name;           /* the current instance */
    char *marker;         /* environment id, part of instance names */
    char **env;           /* environment of the CLI (the filtered child environment) */
    int connect_ms;
};

/* ---- running the CLI ---------------------------------------------------------------- */

typedef struct cli_run {
    sw_child *child;
    int in_fd, out_fd, err_fd;   /* -1 once closed */
} cli_run;

/* What one CLI run consumes and produces. */
typedef struct pump {
    const char *in;              /* stdin for the CLI (the script), or NULL */
    size_t in_len;
    int (*out)(void *ctx, const char *buf, size_t len);   /* stdout; NULL: capture it */
    void (*tick)(void *ctx);
    void *ctx;
    sw_cancel *cancel;
    int64_t deadline;            /* sw_now_ms() time, or -1 */
    char *cap;                   /* captured stdout (NUL-terminated) when out is NULL */
    size_t cap_len;
    char err[ERR_KEEP];          /* the last bytes of the CLI's stderr, NUL-terminated */
    size_t err_len;
    int status;                  /* wait status, once exited */
} pump;

enum { PUMP_EXITED, PUMP_STOPPED, PUMP_TIMEOUT, PUMP_CANCELLED };

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static int cli_start(const sw_transport *t, const char *const *args, bool with_stdin, cli_run *r,
                     char *err, size_t errlen)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
    r->child = NULL;
    r->in_fd = r->out_fd = r->err_fd = -1;
    if ((with_stdin && pipe2(in, O_CLOEXEC) < 0) || pipe2(out, O_CLOEXEC) < 0 ||
        pipe2(er, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    size_t n = 0;
    while (args[n]) n++;
    const char **argv = sw_xcalloc(n + 5, sizeof *argv);
    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = "exec \"$0\" \"$@\" 2>&3 3>&-";
    argv[3] = t->cli;
    memcpy(argv + 4, args, n * sizeof *args);
    sw_spawn sp = {
        .path = "/bin/sh", .argv = (char *const *)argv, .envp = t->env, .cwd = "/",
        .fd_in = in[0], .fd_out = out[1], .fd3 = er[1], .fd4 = -1,
    };
    r->child = sw_proc_spawn(&sp, err, errlen);
    free(argv);
    if (!r->child) goto fail;
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&er[1]);
    r->in_fd = in[1];
    r->out_fd = out[0];
    r->err_fd = er[0];
    if (r->in_fd >= 0) sw_set_nonblock(r->in_fd);
    sw_set_nonblock(r->out_fd);
    sw_set_nonblock(r->err_fd);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&er[i]);
    }
    return -1;
}

/* Closes the pipes and releases the child (a child still running is killed). */
static void cli_end(cli_run *r)
{
    close_fd(&r->in_fd);
    close_fd(&r->out_fd);
    close_fd(&r->err_fd);
    sw_child_free(r->child);
    r->child = NULL;
}

static void keep_err(pump *p, const char *buf, size_t n)
{
    if (n >= ERR_KEEP - 1) {
        buf += n - (ERR_KEEP - 1);
        n = ERR_KEEP - 1;
    }
    if (p->err_len + n > ERR_KEEP - 1) {
        size_t drop = p->err_len + n - (ERR_KEEP - 1);
        memmove(p->err, p->err + drop, p->err_len - drop);
        p->err_len -= drop;
    }
    memcpy(p->err + p->err_len, buf, n);
    p->err_len += n;
    p->err[p->err_len] = '\0';
}

static void keep_out(pump *p, const char *buf, size_t n)
{
    if (p->cap_len + n > CAPTURE_MAX) n = CAPTURE_MAX - p->cap_len;
    p->cap = sw_xrealloc(p->cap, p->cap_len + n + 1);
    memcpy(p->cap + p->cap_len, buf, n);
    p->cap_len += n;
    p->cap[p->cap_len] = '\0';
}

/* Reads what fd has now. Returns 0 at EOF or error, 1 if more may come, 2 when the stdout
 * sink asked to stop. */
static int drain(int fd, bool is_err, pump *p, char *buf)
{
    for (;;) {
        ssize_t r = read(fd, buf, READ_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return 1;
        if (r <= 0) return 0;
        if (is_err) keep_err(p, buf, (size_t)r);
        else if (!p->out) keep_out(p, buf, (size_t)r);
        else if (p->out(p->ctx, buf, (size_t)r) != 0) return 2;
    }
}

/* Feeds stdin as far as the pipe takes it; closes it when all is written or unwanted. */
static void feed(cli_run *r, pump *p, size_t *off)
{
    while (*off < p->in_len) {
        ssize_t w = write(r->in_fd, p->in + *off, p->in_len - *off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        if (w < 0) break;                 /* EPIPE: the CLI is not reading */
        *off += (size_t)w;
    }
    close_fd(&r->in_fd);
}

/* Follows one CLI run: stdin fed, stdout to the sink (or captured), stderr kept, until the
 * CLI has exited and its pipes are drained (a grandchild holding stdout gets
 * POST_EXIT_DRAIN_MS), the sink stops it, the deadline passes or cancel fires. Waiting is
 * poll() on the pipes, the exit event, the cancel event and the tick. */
static int pump_run(cli_run *r, pump *p)
{
    char *buf = sw_xmalloc(READ_CHUNK);
    size_t in_off = 0;
    int64_t next_tick = sw_now_ms() + 1000, drain_until = -1;
    int end = PUMP_EXITED;
    if (r->in_fd >= 0) feed(r, p, &in_off);
    for (;;) {
        bool exited = sw_child_done(r->child, &p->status);
        if (exited && drain_until < 0) drain_until = sw_now_ms() + POST_EXIT_DRAIN_MS;
        if (exited && r->out_fd < 0 && r->err_fd < 0) break;
        struct pollfd pf[5];
        int n = 0, i_out = -1, i_err = -1, i_in = -1, i_cancel = -1;
        if (!exited) { pf[n].fd = sw_child_fd(r->child); pf[n++].events = POLLIN; }
        if (r->out_fd >= 0) { i_out = n; pf[n].fd = r->out_fd; pf[n++].events = POLLIN; }
        if (r->err_fd >= 0) { i_err = n; pf[n].fd = r->err_fd; pf[n++].events = POLLIN; }
        if (r->in_fd >= 0) { i_in = n; pf[n].fd = r->in_fd; pf[n++].events = POLLOUT; }
        if (p->cancel) { i_cancel = n; pf[n].fd = p->cancel->fd; pf[n++].events = POLLIN; }
        int64_t now = sw_now_ms(), wake = p->tick ? next_tick : INT64_MAX;
        if (p->deadline >= 0 && p->deadline < wake) wake = p->deadline;
        if (drain_until >= 0 && drain_until < wake) wake = drain_until;
        int timeout = wake == INT64_MAX ? -1 : wake > now ? (int)(wake - now) : 0;
        if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR) break;
        if (i_in >= 0 && (pf[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) feed(r, p, &in_off);
        if (i_err >= 0 && (pf[i_err].revents & (POLLIN | POLLHUP | POLLERR)) &&
            drain(r->err_fd, true, p, buf) == 0)
            close_fd(&r->err_fd);
        if (i_out >= 0 && (pf[i_out].revents & (POLLIN | POLLHUP | POLLERR))) {
            int d = drain(r->out_fd, false, p, buf);
            if (d == 2) { end = PUMP_STOPPED; break; }
            if (d == 0) close_fd(&r->out_fd);
        }
        if (i_cancel >= 0 && (pf[i_cancel].revents & POLLIN)) { end = PUMP_CANCELLED; break; }
        now = sw_now_ms();
        if (p->deadline >= 0 && now >= p->deadline) { end = PUMP_TIMEOUT; break; }
        if (drain_until >= 0 && now >= drain_until) break;
        if (p->tick && now >= next_tick) {
            p->tick(p->ctx);
            next_tick = now + 1000;
        }
    }
    free(buf);
    return end;
}

/* Runs the CLI to completion with stdout captured; kills it at the deadline. `what`
 * names the action in messages. */
static int cli_call(sw_transport *t, const char *what, const char *const *args, int timeout_ms,
                    pump *p, char *err, size_t errlen)
{
    cli_run r;
    if (cli_start(t, args, false, &r, err, errlen) < 0) return -1;
    p->deadline = sw_now_ms() + timeout_ms;
    int end = pump_run(&r, p);
    if (end != PUMP_EXITED) {
        sw_proc_kill_tree(sw_child_pid(r.child));
        snprintf(err, errlen, "`%s %s` did not finish within %d ms", t->cli, what, timeout_ms);
    }
    cli_end(&r);
    return end == PUMP_EXITED ? 0 : -1;
}

/* The CLI's own explanation of a failure: its last FATAL, ERROR or command-line error
 * message, else the last line of its stderr, else the exit status. */
static void cli_reason(const pump *p, char *out, size_t outlen)
{
    const char *best = NULL;
    size_t best_len = 0;
    bool best_severe = false;
    for (const char *line = p->err; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        bool tagged = len >= 6 && (!strncmp(line, "FATAL:", 6) || !strncmp(line, "ERROR:", 6));
        bool severe = tagged || !strncmp(line, "Error", 5);   /* a command-line error */
        const char *msg = tagged ? line + 6 : line;
        size_t mlen = tagged ? len - 6 : len;
        while (mlen > 0 && *msg == ' ') { msg++; mlen--; }
        if (mlen > 0 && (severe || !best_severe)) {
            best = msg;
            best_len = mlen;
            best_severe = severe;
        }
        if (!nl) break;
        line = nl + 1;
    }
    if (best) snprintf(out, outlen, "%.*s", (int)best_len, best);
    else snprintf(out, outlen, "exit status %d", sw_exit_code(p->status));
}

/* ---- instances ---------------------------------------------------------------------- */

static char *current_name(sw_transport *t)
{
    pthread_mutex_lock(&t->mu);
    char *n = sw_strdup(t->name ? t->name : "");
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* 1 when `instance list` shows the instance, 0 when it does not, -1 when it cannot tell. */
static int instance_alive(sw_transport *t, const char *name, char *err, size_t errlen)
{
    const char *args[] = {"instance", "list", "--json", name, NULL};
    pump p = {0};
    int alive = -1;
    if (cli_call(t, "instance list", args, CLI_TIMEOUT_MS, &p, err, errlen) == 0) {
        json_t *doc = p.cap ? json_loads(p.cap, 0, NULL) : NULL;
        json_t *list = json_object_get(doc, "instances");
        if (json_is_array(list)) {
            alive = 0;
            size_t i;
            json_t *it;
            json_array_foreach(list, i, it) {
                const char *n = json_string_value(json_object_get(it, "instance"));
                if (n && !strcmp(n, name)) alive = 1;
            }
        } else {
            char why[256];
            cli_reason(&p, why, sizeof why);
            snprintf(err, errlen, "`%s instance list` failed: %s", t->cli, why);
        }
        json_decref(doc);
    }
    free(p.cap);
    return alive;
}

/* Stops the named instance, bounded by STOP_TIMEOUT_MS; failures are only logged. */
static void stop_named(sw_transport *t, const char *name)
{
    const char *args[] = {"instance", "stop", "--force", name, NULL};
    pump p = {0};
    char err[256];
    if (cli_call(t, "instance stop", args, STOP_TIMEOUT_MS, &p, err, sizeof err) < 0) {
        sw_warn("singularity: %s", err);
    } else if (!WIFEXITED(p.status) || WEXITSTATUS(p.status) != 0) {
        cli_reason(&p, err, sizeof err);
        sw_debug("singularity: instance stop %s: %s", name, err);
    }
    free(p.cap);
}

static void stop_instance(sw_transport *t)
{
    char *name = current_name(t);
    if (*name) stop_named(t, name);
    free(name);
}

static int start_instance(sw_transport *t, char *err, size_t errlen)
{
    char rnd[9];
    sw_random_hex(rnd, 4);
    char *name = sw_printf("shellwire-%s-%s", t->marker, rnd);
    const char *args[] = {"instance", "start", "--containall", "--no-home", "--writable-tmpfs",
                          t->image, name, NULL};
    pump p = {0};
    int64_t t0 = sw_now_ms();
    int rc = cli_call(t, "instance start", args, t->connect_ms, &p, err, errlen);
    if (rc == 0 && WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0) {
        sw_info("singularity: instance %s started from %s in %lld ms", name, t->image,
                (long long)(sw_now_ms() - t0));
        pthread_mutex_lock(&t->mu);
        free(t->name);
        t->name = name;
        pthread_mutex_unlock(&t->mu);
        free(p.cap);
        return SW_TR_OK;
    }
    if (rc == 0) {
        char why[400];
        cli_reason(&p, why, sizeof why);
        snprintf(err, errlen, "cannot start an instance of %s: %s", t->image, why);
    } else {
        stop_named(t, name);   /* it may have come up after all; it must not linger */
    }
    free(p.cap);
    free(name);
    return rc == 0 ? SW_TR_ERROR : SW_TR_DEGRADED;
}

/* ---- images ------------------------------------------------------------------------- */

static bool is_reference(const char *image) { return strstr(image, "://") != NULL; }

/* <scheme>-<readable part of the reference>-<hash>.sif: distinct references never share
 * a file, and the name still says what it holds. */
static char *cached_name(const char *ref)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)ref; *c; c++) h = (h ^ *c) * 16777619u;
    const char *sep = strstr(ref, "://");
    char clean[65];
    size_t n = 0;
    for (const char *c = sep + 3; *c && n < sizeof clean - 1; c++)
        clean[n++] = (strchr("._-", *c) || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                      (*c >= 'A' && *c <= 'Z')) ? *c : '_';
    clean[n] = '\0';
    return sw_printf("%.*s-%s-%08x.sif", (int)(sep - ref), ref, clean, h);
}

/* Takes the exclusive lock on fd, waiting until the deadline for whoever holds it. The
 * holder's close of the lock file (also when it dies) wakes the wait; a look every second
 * covers file systems without inotify. */
static int lock_wait(int fd, const char *path, int64_t deadline, char *err, size_t errlen)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    if (errno != EWOULDBLOCK) {
        snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
        return -1;
    }
    sw_info("singularity: another build of this image is running; waiting for it (%s)", path);
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in >= 0 && inotify_add_watch(in, path, IN_CLOSE_WRITE) < 0) close_fd(&in);
    int rc = -1;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) { rc = 0; break; }
        int64_t left = deadline - sw_now_ms();
        if (left <= 0) {
            snprintf(err, errlen, "gave up waiting for another build of the image (lock %s)", path);
            break;
        }
        struct pollfd pf = {.fd = in, .events = POLLIN};
        poll(&pf, in >= 0 ? 1 : 0, left < 1000 ? (int)left : 1000);
        char ev[4096];
        while (in >= 0 && read(in, ev, sizeof ev) > 0) {}
    }
    close_fd(&in);
    return rc;
}

/* Builds t->ref into `sif` unless it is there already. */
static int build_image(sw_transport *t, const char *sif, char *err, size_t errlen)
{
    int64_t deadline = sw_now_ms() + BUILD_TIMEOUT_MS;
    if (sw_mkdir_p(t->cache_dir, 0700) < 0) {
        snprintf(err, errlen, "cannot create the image cache %s: %s", t->cache_dir, strerror(errno));
        return SW_TR_ERROR;
    }
    char *lock = sw_printf("%s.lock", sif);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", lock, strerror(errno));
        free(lock);
        return SW_TR_ERROR;
    }
    int rc = SW_TR_OK;
    if (lock_wait(fd, lock, deadline, err, errlen) < 0) {
        rc = SW_TR_DEGRADED;
    } else if (access(sif, R_OK) != 0) {
        char rnd[9];
        sw_random_hex(rnd, 4);
        char *tmp = sw_printf("%s.%s.partial", sif, rnd);
        const char *args[] = {"build", tmp, t->ref, NULL};
        pump p = {0};
        int64_t t0 = sw_now_ms();
        sw_info("singularity: building %s into %s (once; later environments reuse it)", t->ref, sif);
        if (cli_call(t, "build", args, (int)(deadline - t0), &p, err, errlen) < 0) {
            rc = SW_TR_DEGRADED;
        } else if (WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0 && rename(tmp, sif) == 0) {
            sw_info("singularity: built %s in %lld s", sif, (long long)(sw_now_ms() - t0) / 1000);
        } else {
            char why[400];
            cli_reason(&p, why, sizeof why);
            snprintf(err, errlen, "cannot build %s (TERMINAL_SINGULARITY_IMAGE): %s", t->ref, why);
            rc = SW_TR_ERROR;
        }
        unlink(tmp);
        free(tmp);
        free(p.cap);
    }
    close(fd);   /* releases the lock and wakes the waiters */
    free(lock);
    return rc;
}

/* Sets t->image: the configured file, or the cached build of the configured reference. */
static int resolve_image(sw_transport *t, char *err, size_t errlen)
{
    char *image;
    if (is_reference(t->ref)) {
        char *file = cached_name(t->ref);
        image = sw_printf("%s/%s", t->cache_dir, file);
        free(file);
        int rc = access(image, R_OK) == 0 ? SW_TR_OK : build_image(t, image, err, errlen);
        if (rc != SW_TR_OK) {
            free(image);
            return rc;
        }
    } else {
        char *cwd = t->ref[0] == '/' ? NULL : getcwd(NULL, 0);
        image = cwd ? sw_printf("%s/%s", cwd, t->ref) : sw_strdup(t->ref);
        free(cwd);
        if (access(image, R_OK) != 0) {
            snprintf(err, errlen, "TERMINAL_SINGULARITY_IMAGE: cannot read %s: %s", image,
                     strerror(errno));
            free(image);
            return SW_TR_ERROR;
        }
    }
    free(t->image);
    t->image = image;
    return SW_TR_OK;
}

/* TERMINAL_SCRATCH_DIR, else $APPTAINER_CACHEDIR, else the state directory. */
static char *cache_dir(const sw_config *cfg)
{
    const char *base = cfg->scratch_dir && cfg->scratch_dir[0] ? cfg->scratch_dir : getenv("APPTAINER_CACHEDIR");
    if (!base || !base[0]) base = cfg->state_dir;
    return sw_printf("%s/shellwire-images", base);
}

/* ---- the transport ------------------------------------------------------------------ */

static char *find_cli(void)
{
    static const char *const names[] = {"apptainer", "singularity"};
    const char *path = getenv("PATH");
    for (size_t i = 0; path && i < sizeof names / sizeof *names; i++) {
        char *copy = sw_strdup(path), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            char *cand = sw_printf("%s/%s", d, names[i]);
            if (d[0] == '/' && access(cand, X_OK) == 0) {
                free(copy);
                return cand;
            }
            free(cand);
        }
        free(copy);
    }
    return NULL;
}

static void sing_free(sw_transport *t)
{
    free(t->cli);
    free(t->ref);
    free(t->cache_dir);
    free(t->image);
    free(t->name);
    free(t->marker);
    for (char **e = t->env; e && *e; e++) free(*e);
    free(t->env);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static int sing_connect(const sw_open_opts *o, sw_transport **out, char *err, size_t errlen)
{
    const sw_config *cfg = o->config;
    if (!cfg || !cfg->singularity_image || !cfg->singularity_image[0]) {
        snprintf(err, errlen, "the singularity backend needs an image: set "
                              "TERMINAL_SINGULARITY_IMAGE to a SIF file or a docker:// reference");
        return SW_TR_ERROR;
    }
    char *cli = find_cli();
    if (!cli) {
        snprintf(err, errlen, "the singularity backend needs the apptainer (or singularity) "
                              "command, and neither is on PATH");
        return SW_TR_ERROR;
    }
    sw_transport *t = sw_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->cli = cli;
    t->ref = sw_strdup(cfg->singularity_image);
    t->cache_dir = cache_dir(cfg);
    t->marker = sw_strdup(o->marker_id);
    t->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
    size_t n = 0;
    while (o->child_env && o->child_env[n]) n++;
    t->env = sw_xcalloc(n + 1, sizeof *t->env);
    for (size_t i = 0; i < n; i++) t->env[i] = sw_strdup(o->child_env[i]);
    int rc = resolve_image(t, err, errlen);
    if (rc == SW_TR_OK) rc = start_instance(t, err, errlen);
    if (rc != SW_TR_OK) {
        sing_free(t);
        return rc;
    }
    *out = t;
    return SW_TR_OK;
}

/* A finished exec whose CLI has not exited yet: give it LINGER_MS, then kill what is left.
 * Not killing at once keeps a command's background jobs (`sleep 300 &`) alive in the
 * instance, as on every other backend. */
static void *linger_main(void *arg)
{
    sw_child *c = arg;
    if (!sw_child_wait(c, LINGER_MS))
        sw_warn("singularity: an exec that had finished was still running after %d ms; killed", LINGER_MS);
    sw_child_free(c);
    return NULL;
}

static void linger(cli_run *r)
{
    close_fd(&r->in_fd);
    close_fd(&r->out_fd);
    close_fd(&r->err_fd);
    if (sw_thread_detached(linger_main, r->child, 64 * 1024) != 0) sw_child_free(r->child);
    r->child = NULL;
}

/* A completed exec: its exit status, or why it says nothing about the command. */
static int exec_outcome(sw_transport *t, const char *name, const pump *p, int *exit_code,
                        char *err, size_t errlen)
{
    int code = sw_exit_code(p->status);
    bool fatal = code == 255 && strstr(p->err, "FATAL:");
    if (fatal && strstr(p->err, "no instance found")) {
        snprintf(err, errlen, "the instance %s is gone", name);
        return SW_TR_GONE;
    }
    /* Killed with everything else when the instance ended? */
    if ((fatal || code >= 128) && instance_alive(t, name, err, errlen) == 0) {
        snprintf(err, errlen, "the instance %s is gone", name);
        return SW_TR_GONE;
    }
    if (fatal) {
        char why[400];
        cli_reason(p, why, sizeof why);
        snprintf(err, errlen, "%s exec failed: %s", t->cli, why);
        return SW_TR_ERROR;
    }
    *exit_code = code;
    return SW_TR_OK;
}

static int sing_exec(sw_transport *t, const sw_exec_req *req, int *exit_code, char *err,
                     size_t errlen)
{
    char *name = current_name(t);
    char *target = sw_printf("instance://%s", name);
    const char *args[] = {"exec", "--cleanenv", target, "bash", "-c", ". /proc/self/fd/0", NULL};
    cli_run r;
    int rc = SW_TR_DEGRADED;
    if (cli_start(t, args, true, &r, err, errlen) == 0) {
        pump p = {
            .in = req->script, .in_len = strlen(req->script), .out = req->out, .tick = req->tick,
            .ctx = req->ctx, .cancel = req->cancel,
            .deadline = req->timeout_ms > 0 ? sw_now_ms() + req->timeout_ms : -1,
        };
        switch (pump_run(&r, &p)) {
        case PUMP_STOPPED:
            linger(&r);
            rc = SW_TR_INTERRUPTED;
            break;
        case PUMP_TIMEOUT:
        case PUMP_CANCELLED:
            sw_proc_kill_tree(sw_child_pid(r.child));
            cli_end(&r);
            rc = SW_TR_INTERRUPTED;
            break;
        default:
            cli_end(&r);
            rc = exec_outcome(t, name, &p, exit_code, err, errlen);
        }
    }
    free(target);
    free(name);
    return rc;
}

static int sing_reconnect(sw_transport *t, char *err, size_t errlen)
{
    char *name = current_name(t);
    int alive = instance_alive(t, name, err, errlen);
    if (alive == 0) snprintf(err, errlen, "the instance %s is gone", name);
    free(name);
    return alive > 0 ? SW_TR_OK : alive == 0 ? SW_TR_GONE : SW_TR_DEGRADED;
}

static int sing_recreate(sw_transport *t, char *err, size_t errlen)
{
    stop_instance(t);   /* in case a remnant of it is still around */
    int rc = resolve_image(t, err, errlen);
    return rc == SW_TR_OK ? start_instance(t, err, errlen) : rc;
}

static void sing_close(sw_transport *t)
{
    if (!t) return;
    stop_instance(t);
    sing_free(t);
}

static const sw_transport_ops transport = {
    .name = "singularity",
    .connect = sing_connect,
    .exec = sing_exec,
    .reconnect = sing_reconnect,
    .recreate = sing_recreate,
    .close = sing_close,
};

static int sing_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    return sw_remote_open(&transport, o, out, err, errlen);
}

const sw_backend_ops sw_singularity_ops = SW_REMOTE_OPS("singularity", true, sing_open);
