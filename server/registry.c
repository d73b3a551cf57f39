/* server/registry.c — see registry.h.
 *
 * One mutex guards the table. The reactor thread sleeps in epoll_wait on: one inotify
 * instance (a watch per log file that a process writes itself), each pty master, each
 * process's exit fd, and an eventfd used to hand it new work. It wakes only when one of
 * them fires, so idle processes cost nothing.
 *
 * Output is kept as raw bytes (at most RAW_MAX, oldest dropped) and rendered on demand
 * through the output pipeline (UTF-8 repair, ANSI removal), keeping the last 200,000
 * characters. The log file on disk is read incrementally by offset and truncated once it
 * has been read past LOG_ROTATE bytes, so a chatty process cannot fill the disk. */
#include "server/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backends/script.h"
#include "server/log.h"
#include "server/mcp.h"
#include "server/output.h"
#include "server/redact.h"
#include "server/rpc.h"
#include "server/util.h"

#define BUFFER_CHARS 200000
#define RAW_MAX (768 * 1024)           /* raw bytes kept per process */
#define LOG_ROTATE (16 * 1024 * 1024)  /* truncate a log read this far */
#define KEEP_FINISHED_S (30 * 60)
#define KILL_GRACE_MS 2000

enum { EV_CONTROL = 1, EV_INOTIFY, EV_EXIT, EV_PTY };

typedef struct entry {
    char id[18];
    char *task, *command, *cwd;
    long pid;
    unsigned long long start_time;
    time_t started_at;
    time_t ended_at;
    bool running, detached, notify, pty;
    int exit_code;                /* valid when !running; -1 unknown */
    const sw_backend_ops *ops;
    sw_bg *bg;
    sw_env *env;                  /* held while running; NULL when adopted */
    char *log_path, *exit_path;
    int log_fd;                   /* read (and truncate) side of the log file */
    off_t log_off;
    int wd;                       /* inotify watch, or -1 */
    int pty_fd, exit_fd;          /* borrowed from bg; -1 when not watched */
    char *raw;                    /* raw output, oldest first */
    size_t raw_len, raw_cap;
    bool raw_cut;                 /* older output was dropped */
    uint64_t tags[2];             /* epoll cookies (exit, pty) */
    unsigned long seq;            /* start order: the oldest finished is pruned first */
    int pins;                     /* a call uses it without holding mu: do not free */
    bool writing;                 /* a write to its input is under way (without mu) */
    struct entry *next;
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t exited_cv;    /* a process ended (CLOCK_MONOTONIC waits) */
static pthread_cond_t input_cv = PTHREAD_COND_INITIALIZER;   /* a write to an input ended */
static entry *head;
static int ep = -1, ino = -1, ctl = -1;
static char *procs_dir, *checkpoint_path;
static const sw_config *cfg;
static const sw_backend_ops *g_ops;
static unsigned long long self_start;
static uint64_t next_cookie = 1;
static unsigned long next_seq = 1;

/* ---- small helpers ------------------------------------------------------------------- */

static entry *by_cookie(uint64_t c)
{
    for (entry *e = head; e; e = e->next)
        if (e->tags[0] == c || e->tags[1] == c) return e;
    return NULL;
}

static entry *by_wd(int wd)
{
    for (entry *e = head; e; e = e->next)
        if (e->wd == wd) return e;
    return NULL;
}

static void raw_append(entry *e, const char *buf, size_t n)
{
    if (n >= RAW_MAX) {
        buf += n - RAW_MAX / 2;
        n = RAW_MAX / 2;
        e->raw_len = 0;
        e->raw_cut = true;
    }
    if (e->raw_len + n > RAW_MAX) {
        /* Drop the oldest bytes; keep three quarters so this happens rarely. */
        size_t keep = RAW_MAX * 3 / 4 > n ? RAW_MAX * 3 / 4 - n : 0;
        if (keep > e->raw_len) keep = e->raw_len;
        memmove(e->raw, e->raw + e->raw_len - keep, keep);
        e->raw_len = keep;
        e->raw_cut = true;
    }
    if (e->raw_len + n > e->raw_cap) {
        size_t cap = e->raw_cap ? e->raw_cap : 4096;
        while (cap < e->raw_len + n) cap *= 2;
        if (cap > RAW_MAX) cap = RAW_MAX;
        e->raw = sw_xrealloc(e->raw, cap);
        e->raw_cap = cap;
    }
    memcpy(e->raw + e->raw_len, buf, n);
    e->raw_len += n;
}

/* Reads the log file from the last offset to its end; rotates it when it grew large. */
static void read_log(entry *e)
{
    if (e->log_fd < 0) return;
    char buf[65536];
    for (;;) {
        ssize_t r = pread(e->log_fd, buf, sizeof buf, e->log_off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        raw_append(e, buf, (size_t)r);
        e->log_off += r;
    }
    if (e->log_off > LOG_ROTATE && ftruncate(e->log_fd, 0) == 0) e->log_off = 0;
}

static void read_pty(entry *e)
{
    char buf[65536];
    for (;;) {
        ssize_t r = read(e->pty_fd, buf, sizeof buf);
        if (r > 0) {
            raw_append(e, buf, (size_t)r);
            /* The log file keeps what a restarted server can show. */
            if (e->log_fd >= 0 && pwrite(e->log_fd, buf, (size_t)r, e->log_off) == r)
                e->log_off += r;
            if (e->log_off > LOG_ROTATE && ftruncate(e->log_fd, 0) == 0) e->log_off = 0;
            continue;
        }
        if (r < 0 && (errno == EINTR)) continue;
        if (r < 0 && errno == EAGAIN) return;
        /* EOF or EIO: every slave is closed. */
        epoll_ctl(ep, EPOLL_CTL_DEL, e->pty_fd, NULL);
        e->pty_fd = -1;
        return;
    }
}

/* The output as text: repaired, ANSI removed, the last BUFFER_CHARS characters. */
static char *render(const entry *e, size_t *len_out)
{
    const char *raw = e->raw;
    size_t n = e->raw_len;
    if (e->raw_cut) {   /* start at a character boundary */
        size_t skip = 0;
        while (skip < n && skip < 4 && ((unsigned char)raw[skip] & 0xC0) == 0x80) skip++;
        raw += skip;
        n -= skip;
    }
    sw_out_opts oo = {.limit_chars = (size_t)-1 / 32, .keep_whitespace = true};
    sw_out *o = sw_out_new(&oo);
    sw_out_result r = {0};
    if (o) {
        sw_out_feed(o, raw, n);
        sw_out_finish(o, &r);
        sw_out_free(o);
    }
    char *text = r.text ? r.text : sw_strdup("");
    size_t len = r.text ? r.text_len : 0;
    size_t rlen;
    char *red = sw_redact(text, len, &rlen);
    if (red) {
        free(text);
        text = red;
        len = rlen;
    }
    free(r.full_output_path);
    free(r.cwd);
    if (e->pty) {   /* a terminal ends lines with CR LF; the model wants plain lines */
        size_t w = 0;
        for (size_t i = 0; i < len; i++)
            if (!(text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')) text[w++] = text[i];
        text[w] = '\0';
        len = w;
    }
    /* Keep the last BUFFER_CHARS characters. */
    size_t chars = 0, start = len;
    while (start > 0 && chars < BUFFER_CHARS) {
        start--;
        if (((unsigned char)text[start] & 0xC0) != 0x80) chars++;
    }
    if (start > 0) {
        memmove(text, text + start, len - start + 1);
        len -= start;
    }
    *len_out = len;
    return text;
}

/* The last `chars` characters of s, without trailing whitespace (a pointer into s, which
 * is cut at the end of that text). */
static const char *tail_chars(char *s, size_t len, size_t chars)
{
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                       s[len - 1] == '\t'))
        len--;
    s[len] = '\0';
    size_t n = 0, i = len;
    while (i > 0 && n < chars) {
        i--;
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    }
    return s + i;
}

static void iso_time(time_t t, char *buf, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *status_of(const entry *e)
{
    if (e->running) return e->detached ? "detached" : "running";
    return e->exit_code == -1 && e->detached ? "lost" : "exited";
}

/* ---- checkpoint ------------------------------------------------------------------- */

/* Set while checkpoints fail (a full or read-only disk): the problem is logged once,
 * not at every change, and logged again only after it was solved and came back. */
static bool checkpoint_failing;

/* Writes the table atomically (temp file + rename). Called with mu held. */
static void checkpoint(void)
{
    json_t *list = json_array();
    for (entry *e = head; e; e = e->next)
        json_array_append_new(list, json_pack(
            "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:i, s:b, s:s, s:s, s:s}",
            "session_id", e->id, "task", e->task, "command", e->command, "cwd", e->cwd,
            "pid", (json_int_t)e->pid, "start_time", (json_int_t)e->start_time,
            "started_at", (json_int_t)e->started_at, "ended_at", (json_int_t)e->ended_at,
            "running", e->running, "exit_code", e->exit_code, "pty", e->pty,
            "log", e->log_path, "exit", e->exit_path, "backend", e->ops ? e->ops->name : ""));
    json_t *doc = json_pack("{s:I, s:I, s:o}", "server_pid", (json_int_t)getpid(),
                            "server_start_time", (json_int_t)self_start, "processes", list);
    char *tmp = sw_printf("%s.tmp", checkpoint_path);
    errno = 0;
    if (json_dump_file(doc, tmp, JSON_COMPACT) == 0 && rename(tmp, checkpoint_path) == 0) {
        if (checkpoint_failing) sw_warn("the process registry is saved again (%s)", checkpoint_path);
        checkpoint_failing = false;
    } else {
        int err = errno;
        unlink(tmp);   /* a partial temp file only takes space */
        if (!checkpoint_failing)
            sw_warn("cannot save the process registry to %s: %s. Background processes keep "
                    "running and can be managed, but a server started after a crash of this "
                    "one would not find the newest of them. (Not repeated until it works "
                    "again.)", checkpoint_path, err ? strerror(err) : "write failed");
        checkpoint_failing = true;
    }
    free(tmp);
    json_decref(doc);
}

/* ---- lifecycle of entries ------------------------------------------------------------ */

static void watch_entry(entry *e)
{
    struct epoll_event ev = {.events = EPOLLIN};
    if (e->exit_fd >= 0) {
        e->tags[0] = next_cookie++;
        ev.data.u64 = (e->tags[0] << 3) | EV_EXIT;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, e->exit_fd, &ev) < 0) e->exit_fd = -1;
    }
    if (e->pty_fd >= 0) {
        e->tags[1] = next_cookie++;
        ev.data.u64 = (e->tags[1] << 3) | EV_PTY;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, e->pty_fd, &ev) < 0) e->pty_fd = -1;
    } else if (e->log_fd >= 0) {
        e->wd = inotify_add_watch(ino, e->log_path, IN_MODIFY);
        read_log(e);   /* what it wrote before the watch existed */
    }
}

static void unwatch_entry(entry *e)
{
    if (e->exit_fd >= 0) epoll_ctl(ep, EPOLL_CTL_DEL, e->exit_fd, NULL);
    if (e->pty_fd >= 0) epoll_ctl(ep, EPOLL_CTL_DEL, e->pty_fd, NULL);
    if (e->wd >= 0) inotify_rm_watch(ino, e->wd);
    e->exit_fd = e->pty_fd = e->wd = -1;
}

static void notify_exit(const entry *e)
{
    if (!sw_mcp_log_enabled(SW_LOG_NOTICE)) return;
    size_t len;
    char *text = render(e, &len);
    json_t *data = json_pack("{s:s, s:i, s:s, s:s}", "session_id", e->id, "exit_code",
                             e->exit_code, "command", e->command, "output_tail",
                             tail_chars(text, len, 2000));
    free(text);
    if (data)
        sw_rpc_notify("notifications/message",
                      json_pack("{s:s, s:s, s:o}", "level", "notice", "logger", "shellwire",
                                "data", data));
}

/* The process ended: collect the last output and the exit code. mu held. */
static void finish_entry(entry *e)
{
    if (e->pty_fd >= 0) read_pty(e);
    read_log(e);
    sw_bg_state st = {0};
    if (e->bg) e->ops->bg_status(e->bg, &st);
    e->running = false;
    e->exit_code = e->bg ? st.exit_code : -1;
    e->ended_at = time(NULL);
    unwatch_entry(e);
    if (e->env) {
        sw_env_unhold(e->env);
        e->env = NULL;
    }
    if (e->notify) notify_exit(e);
    checkpoint();
    pthread_cond_broadcast(&exited_cv);
}

static void free_entry(entry *e)
{
    unwatch_entry(e);
    if (e->bg) e->ops->bg_free(e->bg);
    if (e->log_fd >= 0) close(e->log_fd);
    if (e->log_path) unlink(e->log_path);
    if (e->exit_path) unlink(e->exit_path);
    free(e->task);
    free(e->command);
    free(e->cwd);
    free(e->log_path);
    free(e->exit_path);
    free(e->raw);
    free(e);
}

/* Drops finished entries older than the retention time, and when the task's table is
 * full its oldest finished one. mu held. Returns false when the task has SW_REG_MAX
 * processes that all still run. */
static bool make_room(const char *task)
{
    time_t now = time(NULL);
    for (entry **pp = &head; *pp;) {
        entry *e = *pp;
        if (!e->running && !e->pins && now - e->ended_at > KEEP_FINISHED_S) {
            *pp = e->next;
            free_entry(e);
        } else {
            pp = &e->next;
        }
    }
    for (;;) {
        int count = 0;
        entry **oldest = NULL;
        for (entry **pp = &head; *pp; pp = &(*pp)->next) {
            if (!task || strcmp((*pp)->task, task) != 0) continue;
            count++;
            if (!(*pp)->running && !(*pp)->pins && (!oldest || (*pp)->seq < (*oldest)->seq)) oldest = pp;
        }
        if (!task || count < SW_REG_MAX) return true;
        if (!oldest) return false;
        entry *e = *oldest;
        *oldest = e->next;
        free_entry(e);
    }
}

/* ---- reactor ------------------------------------------------------------------------- */

static void *reactor_main(void *arg)
{
    (void)arg;
    struct epoll_event evs[64];
    char ibuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            sw_error("reactor: epoll_wait: %s", strerror(errno));
            return NULL;
        }
        pthread_mutex_lock(&mu);
        for (int i = 0; i < n; i++) {
            uint64_t kind = evs[i].data.u64 & 7, cookie = evs[i].data.u64 >> 3;
            if (kind == EV_CONTROL) {
                uint64_t v;
                ssize_t r = read(ctl, &v, sizeof v);
                (void)r;
            } else if (kind == EV_INOTIFY) {
                ssize_t r;
                while ((r = read(ino, ibuf, sizeof ibuf)) > 0) {
                    for (char *p = ibuf; p < ibuf + r;) {
                        struct inotify_event *ie = (struct inotify_event *)p;
                        entry *e = by_wd(ie->wd);
                        if (e) read_log(e);
                        p += sizeof *ie + ie->len;
                    }
                }
            } else {
                entry *e = by_cookie(cookie);
                if (!e) continue;
                if (kind == EV_PTY) read_pty(e);
                else if (e->running) finish_entry(e);
            }
        }
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

/* ---- adoption after a crash ------------------------------------------------------- */

static void adopt_file(const char *path)
{
    json_t *doc = json_load_file(path, 0, NULL);
    if (!doc) return;
    json_int_t spid = json_integer_value(json_object_get(doc, "server_pid"));
    json_int_t sstart = json_integer_value(json_object_get(doc, "server_start_time"));
    if (spid > 0 && sw_proc_start_time((pid_t)spid) == (unsigned long long)sstart) {
        json_decref(doc);   /* that server is alive: its processes are its own */
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(doc, "processes"), i, p) {
        entry *e = sw_xcalloc(1, sizeof *e);
        snprintf(e->id, sizeof e->id, "%s", json_string_value(json_object_get(p, "session_id")) ?: "");
        e->task = sw_strdup(json_string_value(json_object_get(p, "task")) ?: "default");
        e->command = sw_strdup(json_string_value(json_object_get(p, "command")) ?: "");
        e->cwd = sw_strdup(json_string_value(json_object_get(p, "cwd")) ?: "");
        e->pid = (long)json_integer_value(json_object_get(p, "pid"));
        e->start_time = (unsigned long long)json_integer_value(json_object_get(p, "start_time"));
        e->started_at = (time_t)json_integer_value(json_object_get(p, "started_at"));
        e->ended_at = (time_t)json_integer_value(json_object_get(p, "ended_at"));
        e->exit_code = (int)json_integer_value(json_object_get(p, "exit_code"));
        e->pty = json_is_true(json_object_get(p, "pty"));
        e->log_path = sw_strdup(json_string_value(json_object_get(p, "log")) ?: "");
        e->exit_path = sw_strdup(json_string_value(json_object_get(p, "exit")) ?: "");
        e->detached = true;
        e->seq = next_seq++;
        e->wd = e->pty_fd = e->exit_fd = -1;
        e->ops = g_ops;
        e->log_fd = open(e->log_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (e->log_fd >= 0) {
            /* Show the tail of what it wrote so far. */
            off_t size = lseek(e->log_fd, 0, SEEK_END);
            e->log_off = size > RAW_MAX ? size - RAW_MAX : 0;
            e->raw_cut = e->log_off > 0;
            read_log(e);
        }
        sw_bg_info info = {.pty_fd = -1, .exit_fd = -1};
        if (json_is_true(json_object_get(p, "running")) && g_ops->bg_adopt)
            e->bg = g_ops->bg_adopt(e->pid, e->start_time, e->exit_path, &info);
        e->running = e->bg != NULL;
        if (!e->running && json_is_true(json_object_get(p, "running"))) {
            /* It ended while no server watched it: the exit-code file may know how. */
            FILE *f = fopen(e->exit_path, "re");
            if (!f || fscanf(f, "%d", &e->exit_code) != 1) e->exit_code = -1;
            if (f) fclose(f);
            e->ended_at = time(NULL);
        }
        e->exit_fd = info.exit_fd;
        if (e->running) watch_entry(e);
        e->next = head;
        head = e;
    }
    json_decref(doc);
    unlink(path);
}

int sw_reg_init(const sw_config *c, const sw_backend_ops *ops)
{
    cfg = c;
    g_ops = ops;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&exited_cv, &ca);
    pthread_condattr_destroy(&ca);
    self_start = sw_proc_start_time(getpid());
    procs_dir = sw_printf("%s/procs", c->state_dir);
    if (sw_mkdir_p(procs_dir, 0700) < 0) {
        sw_error("cannot create %s: %s", procs_dir, strerror(errno));
        return -1;
    }
    checkpoint_path = sw_printf("%s/registry-%ld.json", procs_dir, (long)getpid());
    ep = epoll_create1(EPOLL_CLOEXEC);
    ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    ctl = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ep < 0 || ino < 0 || ctl < 0) {
        sw_error("cannot set up the process reactor: %s", strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_CONTROL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ctl, &ev);
    ev.data.u64 = EV_INOTIFY;
    epoll_ctl(ep, EPOLL_CTL_ADD, ino, &ev);

    pthread_mutex_lock(&mu);
    DIR *d = opendir(procs_dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strncmp(de->d_name, "registry-", 9) || !strstr(de->d_name, ".json") ||
                strstr(de->d_name, ".tmp"))
                continue;
            char *path = sw_printf("%s/%s", procs_dir, de->d_name);
            if (strcmp(path, checkpoint_path) != 0) adopt_file(path);
            free(path);
        }
        closedir(d);
    }
    if (head) checkpoint();
    pthread_mutex_unlock(&mu);

    return sw_thread_detached(reactor_main, NULL, 256 * 1024);
}

/* ---- starting ---------------------------------------------------------------------- */

json_t *sw_reg_start(sw_env *env, const char *task, const char *command,
                     const char *run_command, const char *stdin_data, const char *cwd,
                     bool pty, bool notify, char *err, size_t errlen)
{
    const sw_backend_ops *ops = sw_env_ops(env);
    if (!ops->bg_spawn) {
        snprintf(err, errlen, "background processes are not supported by the %s backend", ops->name);
        return NULL;
    }
    pthread_mutex_lock(&mu);
    if (!make_room(task)) {
        pthread_mutex_unlock(&mu);
        snprintf(err, errlen, "%d background processes are already running; kill or wait for "
                 "some (process action list) before starting another", SW_REG_MAX);
        return NULL;
    }
    entry *e = sw_xcalloc(1, sizeof *e);
    memcpy(e->id, "proc_", 5);
    sw_random_hex(e->id + 5, 6);
    e->task = sw_strdup(task);
    e->command = sw_strdup(command);
    e->cwd = sw_strdup(cwd);
    e->pty = pty;
    e->notify = notify;
    e->ops = ops;
    e->log_path = sw_printf("%s/%s.log", procs_dir, e->id);
    e->exit_path = sw_printf("%s/%s.exit", procs_dir, e->id);
    e->wd = e->pty_fd = e->exit_fd = e->log_fd = -1;
    unlink(e->exit_path);
    e->log_fd = open(e->log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    sw_bg_req req = {.command = run_command, .stdin_data = stdin_data, .cwd = cwd, .pty = pty,
                     .log_path = e->log_path,
                     .exit_path = e->exit_path};
    sw_bg_info info = {.pty_fd = -1, .exit_fd = -1};
    if (e->log_fd < 0 ||
        ops->bg_spawn(sw_env_backend(env), &req, &e->bg, &info, err, errlen) != SW_BE_OK) {
        if (e->log_fd < 0) snprintf(err, errlen, "cannot create %s: %s", e->log_path, strerror(errno));
        pthread_mutex_unlock(&mu);
        e->bg = NULL;
        free_entry(e);
        return NULL;
    }
    e->pid = info.pid;
    e->start_time = info.start_time;
    e->pty_fd = info.pty_fd;
    e->exit_fd = info.exit_fd;
    e->started_at = time(NULL);
    e->seq = next_seq++;
    e->running = true;
    e->env = env;
    sw_env_hold(env);
    e->next = head;
    head = e;
    watch_entry(e);
    checkpoint();
    json_t *res = json_pack("{s:s, s:s, s:I, s:i, s:n}", "output", "Background process started",
                            "session_id", e->id, "pid", (json_int_t)e->pid, "exit_code", 0,
                            "error");
    pthread_mutex_unlock(&mu);
    return res;
}

/* ---- the process tool ------------------------------------------------------------- */

static json_t *err_env(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *err_env(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sw_utf8_sanitize(msg);      /* a cut may split a character; JSON needs UTF-8 */
    return json_pack("{s:s, s:s}", "error", msg, "status", "error");
}

/* Finds the caller's process by id or unique prefix. mu held. */
static entry *lookup(const char *task, json_t *jid, json_t **error)
{
    if (!jid || json_is_null(jid)) {
        *error = err_env("Missing \"session_id\": this action needs the session_id that "
                         "terminal(background: true) returned (see action \"list\").");
        return NULL;
    }
    if (!json_is_string(jid)) {
        *error = err_env("Invalid \"session_id\": expected a string like \"proc_1a2b3c4d5e6f\".");
        return NULL;
    }
    const char *id = json_string_value(jid);
    const char *hex = strncmp(id, "proc_", 5) == 0 ? id + 5 : id;
    size_t hl = strlen(hex);
    if (hl < 4 || hl > 12 || strspn(hex, "0123456789abcdef") != hl) {
        *error = err_env("Unknown session_id \"%s\": expected \"proc_\" followed by 12 hex "
                         "digits, or a unique prefix of at least 4 of them.", id);
        return NULL;
    }
    entry *found = NULL;
    int matches = 0;
    for (entry *e = head; e; e = e->next)
        if (!strcmp(e->task, task) && !strncmp(e->id + 5, hex, hl)) { found = e; matches++; }
    if (matches == 1) return found;
    *error = matches == 0
        ? err_env("No such process \"%s\" (unknown session_id) in this environment; "
                  "action \"list\" shows the known ones.", id)
        : err_env("The session_id prefix \"%s\" is ambiguous: it matches %d processes; give "
                  "more digits.", id, matches);
    return NULL;
}

static json_int_t uptime(const entry *e)
{
    time_t end = e->running ? time(NULL) : e->ended_at;
    return end > e->started_at ? (json_int_t)(end - e->started_at) : 0;
}

static void put_exit_code(json_t *o, const entry *e)
{
    json_object_set_new(o, "exit_code", e->running ? json_null() : json_integer(e->exit_code));
}

static json_t *do_list(const char *task)
{
    make_room(NULL);
    json_t *arr = json_array();
    for (entry *e = head; e; e = e->next) {
        if (strcmp(e->task, task) != 0) continue;
        size_t len;
        char *text = render(e, &len);
        char when[32];
        iso_time(e->started_at, when, sizeof when);
        json_t *o = json_pack("{s:s, s:s%, s:s, s:I, s:s, s:I, s:s, s:s}", "session_id", e->id,
                              "command", e->command, strlen(e->command) > 200 ? (size_t)200 : strlen(e->command),
                              "cwd", e->cwd, "pid", (json_int_t)e->pid, "started_at", when,
                              "uptime_seconds", uptime(e), "status", status_of(e),
                              "output_preview", tail_chars(text, len, 200));
        free(text);
        if (!o) continue;
        put_exit_code(o, e);
        json_array_append_new(arr, o);
    }
    return json_pack("{s:o, s:n}", "processes", arr, "error");
}

static json_t *do_poll(entry *e)
{
    size_t len;
    char *text = render(e, &len);
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:n}", "session_id", e->id, "status",
                          status_of(e), "pid", (json_int_t)e->pid, "uptime_seconds", uptime(e),
                          "output_preview", tail_chars(text, len, 1000), "error");
    free(text);
    if (o && !e->running) put_exit_code(o, e);
    return o;
}

static bool opt_int(json_t *args, const char *key, long min, long *out, json_t **error)
{
    json_t *v = json_object_get(args, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_integer(v) || json_integer_value(v) < min) {
        *error = err_env("Invalid \"%s\": expected a whole number, at least %ld.", key, min);
        return false;
    }
    *out = (long)json_integer_value(v);
    return true;
}

static json_t *do_log(entry *e, json_t *args)
{
    json_t *error = NULL;
    long offset = -1, limit = 200;
    if (!opt_int(args, "offset", 0, &offset, &error) || !opt_int(args, "limit", 1, &limit, &error))
        return error;
    size_t len;
    char *text = render(e, &len);
    /* Line starts; a final line without newline counts. */
    size_t nlines = 0, cap = 64;
    size_t *starts = sw_xmalloc(cap * sizeof *starts);
    for (size_t i = 0; i < len;) {
        if (nlines == cap) starts = sw_xrealloc(starts, (cap *= 2) * sizeof *starts);
        starts[nlines++] = i;
        char *nl = memchr(text + i, '\n', len - i);
        i = nl ? (size_t)(nl - text) + 1 : len;
    }
    size_t first = offset < 0 ? (nlines > (size_t)limit ? nlines - (size_t)limit : 0) : (size_t)offset;
    size_t last = first + (size_t)limit < nlines ? first + (size_t)limit : nlines;   /* exclusive */
    char showing[96];
    const char *from = "", *to = "";
    size_t outlen = 0;
    if (first < last) {
        from = text + starts[first];
        to = last < nlines ? text + starts[last] : text + len;
        outlen = (size_t)(to - from);
        if (outlen > 0 && from[outlen - 1] == '\n') outlen--;
        snprintf(showing, sizeof showing, "lines %zu-%zu of %zu", first + 1, last, nlines);
    } else {
        snprintf(showing, sizeof showing, "no lines");
    }
    json_t *o = json_pack("{s:s, s:s, s:s%, s:I, s:s, s:n}", "session_id", e->id, "status",
                          status_of(e), "output", from, outlen, "total_lines", (json_int_t)nlines,
                          "showing", showing, "error");
    free(starts);
    free(text);
    return o;
}

static json_t *with_tail(json_t *o, const entry *e)
{
    size_t len;
    char *text = render(e, &len);
    json_object_set_new(o, "output", json_string(tail_chars(text, len, 2000)));
    free(text);
    return o;
}

static json_t *do_wait(entry *e, json_t *args, sw_cancel *cancel)
{
    json_t *error = NULL;
    long want = cfg->timeout_s;
    if (!opt_int(args, "timeout", 1, &want, &error)) return error;
    long t = want > cfg->timeout_s ? cfg->timeout_s : want;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += t;
    e->pins++;   /* the table is unlocked while waiting */
    while (e->running && !(cancel && sw_cancel_fired(cancel)))
        if (pthread_cond_timedwait(&exited_cv, &mu, &until) == ETIMEDOUT) break;
    e->pins--;
    if (!e->running) {
        json_t *o = json_pack("{s:s, s:s, s:i, s:n}", "session_id", e->id, "status", "exited",
                              "exit_code", e->exit_code, "error");
        return with_tail(o, e);
    }
    char note[256];
    snprintf(note, sizeof note, "%sThe process is still running after %ld s; this is not an "
             "error. Wait again, poll it later, or kill it.",
             want > t ? "The requested timeout was longer than the maximum and was shortened. " : "",
             t);
    json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:n}", "session_id", e->id, "status",
                          "timeout", "process_running", 1, "timeout_note", note, "error");
    return with_tail(o, e);
}

static json_t *do_kill(entry *e)
{
    if (!e->running)
        return json_pack("{s:s, s:s, s:i, s:n}", "session_id", e->id, "status",
                         "already_exited", "exit_code", e->exit_code, "error");
    long surv[32];
    size_t nsurv = 32;
    sw_bg *bg = e->bg;
    /* Killing takes up to the grace period: do it without holding the table. */
    e->pins++;
    pthread_mutex_unlock(&mu);
    int rc = e->ops->bg_kill(bg, KILL_GRACE_MS, surv, &nsurv);
    pthread_mutex_lock(&mu);
    e->pins--;
    if (e->running) finish_entry(e);
    e->exit_code = -15;
    checkpoint();
    json_t *o = json_pack("{s:s, s:s, s:i, s:n}", "session_id", e->id, "status", "killed",
                          "exit_code", -15, "error");
    if (rc == 1)   /* the backend says SIGTERM was not enough */
        json_object_set_new(o, "kill_note", json_string(
            "The process did not end within 2 s of SIGTERM (it ignores or handles it), so it "
            "and what was left of its tree were killed with SIGKILL."));
    if (rc < 0 && nsurv > 0) {
        json_t *arr = json_array();
        for (size_t i = 0; i < nsurv && i < 32; i++) json_array_append_new(arr, json_integer(surv[i]));
        json_object_set_new(o, "survivors", arr);
        json_object_set_new(o, "status", json_string("error"));
        json_object_set_new(o, "error", json_string("Some processes of the tree survived SIGKILL (see survivors)."));
    }
    return o;
}

static json_t *do_input(entry *e, const char *action, json_t *args)
{
    if (!e->pty)
        return err_env("Process %s was not started with \"pty\": true, so it has no input to "
                       "write to (its stdin is /dev/null). Start it with terminal(background: "
                       "true, pty: true) to interact with it.", e->id);
    if (!e->running) return err_env("Process %s has already exited.", e->id);
    json_t *jd = json_object_get(args, "data");
    bool is_close = !strcmp(action, "close");
    if (!is_close && !json_is_string(jd))
        return err_env("Missing or invalid \"data\": action \"%s\" needs the text to send as a string.", action);
    char *buf = NULL;
    size_t len = 0;
    if (!is_close) {
        len = json_string_length(jd);
        buf = sw_xmalloc(len + 2);
        memcpy(buf, json_string_value(jd), len);
        if (!strcmp(action, "submit")) buf[len++] = '\n';
    }
    /* A process that does not read its input makes the write wait (up to the backend's
     * bound): do it without holding the table, so other calls go on, but one write at a
     * time per process, so that two writes never interleave. */
    e->pins++;
    while (e->writing) pthread_cond_wait(&input_cv, &mu);
    e->writing = true;
    pthread_mutex_unlock(&mu);
    int rc = e->ops->bg_write(e->bg, buf, len, is_close);
    int err = errno;
    pthread_mutex_lock(&mu);
    e->writing = false;
    pthread_cond_broadcast(&input_cv);
    e->pins--;
    free(buf);
    if (rc < 0 && err == EAGAIN)
        return err_env("Could not write to process %s: it is not reading its input (the "
                       "terminal's input buffer stayed full), so not all of the data was "
                       "sent. Check what it is doing with poll or log.", e->id);
    if (rc < 0) return err_env("Could not write to process %s: %s", e->id, strerror(err));
    return json_pack("{s:s, s:s, s:I, s:n}", "session_id", e->id, "status", "ok",
                     "bytes_written", (json_int_t)len, "error");
}

json_t *sw_reg_action(const char *task, const char *action, json_t *args, sw_cancel *cancel)
{
    static const char *valid = "list, poll, log, wait, kill, write, submit, close";
    pthread_mutex_lock(&mu);
    json_t *res = NULL, *error = NULL;
    if (!strcmp(action, "list")) {
        res = do_list(task);
    } else if (!strcmp(action, "poll") || !strcmp(action, "log") || !strcmp(action, "wait") ||
               !strcmp(action, "kill") || !strcmp(action, "write") || !strcmp(action, "submit") ||
               !strcmp(action, "close")) {
        entry *e = lookup(task, json_object_get(args, "session_id"), &error);
        if (!e) res = error;
        else if (!strcmp(action, "poll")) res = do_poll(e);
        else if (!strcmp(action, "log")) res = do_log(e, args);
        else if (!strcmp(action, "wait")) res = do_wait(e, args, cancel);
        else if (!strcmp(action, "kill")) res = do_kill(e);
        else res = do_input(e, action, args);
    } else {
        res = err_env("Unknown action \"%s\"; use one of %s.", action, valid);
    }
    pthread_mutex_unlock(&mu);
    return res ? res : err_env("internal error: the result could not be encoded");
}

void sw_reg_wake_waiters(void)
{
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&exited_cv);
    pthread_mutex_unlock(&mu);
}

void sw_reg_shutdown(void)
{
    /* Everything this server started is being killed: a later server has nothing to
     * adopt. Do not wait long for the table; the process is about to exit. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 200 * 1000000;
    if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
    bool locked = pthread_mutex_timedlock(&mu, &until) == 0;
    if (locked)
        for (entry *e = head; e; e = e->next) {
            /* Adopted processes are not our descendants; they are ours all the same. */
            if (e->running && e->detached && e->bg) {
                long surv[4];
                size_t n = 4;
                e->ops->bg_kill(e->bg, 0, surv, &n);
            }
            if (e->log_path) unlink(e->log_path);
            if (e->exit_path) unlink(e->exit_path);
        }
    if (checkpoint_path) unlink(checkpoint_path);
}
