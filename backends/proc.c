/* backends/proc.c — spawning, reaping and tree killing for processes on the server host.
 *
 * Ownership: a sw_child belongs to whoever spawned it until sw_child_free. The registry
 * (a list under one mutex) lets the reaper find the child for a pid. A child freed while
 * still running is marked orphaned; the reaper frees it when it is finally reaped. */
#include "backends/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/log.h"
#include "server/util.h"

struct sw_child {
    pid_t pid;
    int efd;
    int status;
    bool done;
    bool orphaned;
    struct sw_child *next;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sw_child *reg_head;
static bool stopping;           /* set by sw_proc_shutdown: no new children */

int sw_cancel_init(sw_cancel *c)
{
    atomic_store(&c->fired, 0);
    c->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return c->fd < 0 ? -1 : 0;
}

void sw_cancel_fire(sw_cancel *c)
{
    if (atomic_exchange(&c->fired, 1)) return;
    uint64_t one = 1;
    ssize_t w = write(c->fd, &one, sizeof one);
    (void)w;
}

bool sw_cancel_fired(sw_cancel *c) { return atomic_load(&c->fired) != 0; }

void sw_cancel_destroy(sw_cancel *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

int sw_proc_init(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

static void signal_done(struct sw_child *c)
{
    uint64_t one = 1;
    ssize_t w = write(c->efd, &one, sizeof one);
    (void)w;
}

sw_child *sw_proc_spawn(const sw_spawn *sp, char *err, size_t errlen)
{
    /* Source fds below 5 would collide with the dup2 targets; move them up first. */
    int src[4] = {sp->fd_in, sp->fd_out, sp->fd3, sp->fd3 >= 0 ? sp->fd4 : -1};
    int moved[4] = {-1, -1, -1, -1};
    for (int i = 0; i < 4; i++) {
        if (src[i] >= 0 && src[i] < 5) {
            moved[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10);
            if (moved[i] < 0) {
                snprintf(err, errlen, "cannot duplicate a descriptor: %s", strerror(errno));
                for (int j = 0; j < i; j++) if (moved[j] >= 0) close(moved[j]);
                return NULL;
            }
            src[i] = moved[i];
        }
    }

    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&fa);
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    if (sp->tty) {
        /* After setsid, opening the slave makes it the controlling terminal. */
        posix_spawn_file_actions_addopen(&fa, 0, sp->tty, O_RDWR, 0);
        posix_spawn_file_actions_adddup2(&fa, 0, 1);
        posix_spawn_file_actions_adddup2(&fa, 0, 2);
    } else {
        if (src[0] >= 0) posix_spawn_file_actions_adddup2(&fa, src[0], 0);
        else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, src[1], 1);
        posix_spawn_file_actions_adddup2(&fa, src[1], 2);
    }
    if (src[2] >= 0) posix_spawn_file_actions_adddup2(&fa, src[2], 3);
    if (src[3] >= 0) posix_spawn_file_actions_adddup2(&fa, src[3], 4);
    if (sp->cwd) posix_spawn_file_actions_addchdir_np(&fa, sp->cwd);
    posix_spawn_file_actions_addclosefrom_np(&fa, src[3] >= 0 ? 5 : src[2] >= 0 ? 4 : 3);

    struct sw_child *c = sw_xcalloc(1, sizeof *c);
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = -1;
    if (c->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
    } else {
        /* Hold the registry lock across spawn and insert so the reaper cannot reap the
         * child before it is registered. */
        pthread_mutex_lock(&reg_mu);
        rc = stopping ? ESHUTDOWN : posix_spawn(&c->pid, sp->path, &fa, &attr, sp->argv, sp->envp);
        if (rc == 0) {
            c->next = reg_head;
            reg_head = c;
        }
        pthread_mutex_unlock(&reg_mu);
        if (rc != 0) snprintf(err, errlen, "cannot start %s: %s", sp->path, strerror(rc));
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 4; i++) if (moved[i] >= 0) close(moved[i]);
    if (rc != 0) {
        if (c->efd >= 0) close(c->efd);
        free(c);
        return NULL;
    }
    return c;
}

pid_t sw_child_pid(const sw_child *c) { return c->pid; }
int sw_child_fd(const sw_child *c) { return c->efd; }

bool sw_child_done(sw_child *c, int *status)
{
    pthread_mutex_lock(&reg_mu);
    bool d = c->done;
    if (d && status) *status = c->status;
    pthread_mutex_unlock(&reg_mu);
    return d;
}

bool sw_child_wait(sw_child *c, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : sw_now_ms() + timeout_ms;
    for (;;) {
        if (sw_child_done(c, NULL)) return true;
        int left = -1;
        if (deadline >= 0) {
            int64_t l = deadline - sw_now_ms();
            if (l <= 0) return false;
            left = (int)l;
        }
        struct pollfd p = {.fd = c->efd, .events = POLLIN};
        if (poll(&p, 1, left) < 0 && errno != EINTR) return sw_child_done(c, NULL);
    }
}

static void unlink_child(struct sw_child *c)
{
    for (struct sw_child **pp = &reg_head; *pp; pp = &(*pp)->next)
        if (*pp == c) { *pp = c->next; return; }
}

void sw_child_free(sw_child *c)
{
    if (!c) return;
    pthread_mutex_lock(&reg_mu);
    bool done = c->done;
    if (done) unlink_child(c);
    else c->orphaned = true;
    pthread_mutex_unlock(&reg_mu);
    if (done) {
        close(c->efd);
        free(c);
    } else {
        sw_proc_kill_tree(c->pid);   /* the reaper frees it once reaped */
    }
}

int sw_exit_code(int status)
{
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

void sw_proc_reap(void)
{
    pthread_mutex_lock(&reg_mu);
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p < 0 && errno == EINTR) continue;
        if (p <= 0) break;
        for (struct sw_child *c = reg_head; c; c = c->next) {
            if (c->pid != p) continue;
            c->status = st;
            c->done = true;
            if (c->orphaned) {
                unlink_child(c);
                close(c->efd);
                free(c);
            } else {
                signal_done(c);
            }
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
}

/* ---- process tree killing ---------------------------------------------------------- */

struct pinfo {
    pid_t pid, ppid, pgrp, sid;
    char state;
    char comm[17];
};

/* Reads every /proc/<pid>/stat. The comm field may hold spaces and ')', so parse after
 * the last ')'. */
static size_t scan_procs(struct pinfo **out)
{
    size_t n = 0, cap = 256;
    struct pinfo *v = sw_xmalloc(cap * sizeof *v);
    DIR *d = opendir("/proc");
    if (!d) { *out = v; return 0; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0) continue;
        buf[r] = '\0';
        char *rp = strrchr(buf, ')');
        char *lp = strchr(buf, '(');
        if (!rp || !lp || lp > rp) continue;
        struct pinfo pi = {.pid = atoi(buf)};
        size_t cl = (size_t)(rp - lp - 1) < sizeof pi.comm - 1 ? (size_t)(rp - lp - 1) : sizeof pi.comm - 1;
        memcpy(pi.comm, lp + 1, cl);
        int ppid, pgrp, sid;
        if (sscanf(rp + 1, " %c %d %d %d", &pi.state, &ppid, &pgrp, &sid) != 4) continue;
        pi.ppid = ppid; pi.pgrp = pgrp; pi.sid = sid;
        if (n == cap) v = sw_xrealloc(v, (cap *= 2) * sizeof *v);
        v[n++] = pi;
    }
    closedir(d);
    *out = v;
    return n;
}

/* Marks in `sel` the processes that belong to the tree: session/group of root (if root
 * > 0), descendants of root or of the server (root == 0), closed under "child of". */
static size_t select_tree(const struct pinfo *v, size_t n, pid_t root, bool *sel)
{
    pid_t self = getpid();
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        sel[i] = false;
        if (v[i].pid == self) continue;
        if (root > 0 ? (v[i].pid == root || v[i].sid == root || v[i].pgrp == root)
                     : v[i].ppid == self)
            sel[i] = true;
    }
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < n; i++) {
            if (sel[i] || v[i].pid == self) continue;
            for (size_t j = 0; j < n; j++) {
                if (sel[j] && v[j].pid == v[i].ppid) { sel[i] = grew = true; break; }
            }
        }
    }
    for (size_t i = 0; i < n; i++) count += sel[i] && v[i].state != 'Z';
    return count;
}

static void signal_selected(const struct pinfo *v, size_t n, const bool *sel, int sig)
{
    for (size_t i = 0; i < n; i++)
        if (sel[i] && v[i].state != 'Z') kill(v[i].pid, sig);
}

static void kill_tree(pid_t root)
{
    /* Stop the whole tree before killing anything: a killed parent would hand its
     * children to the subreaper at once, and the parent link we follow would be lost.
     * Stopped processes cannot fork, so a second scan sees the complete tree. */
    struct pinfo *v;
    size_t n;
    bool *sel;
    for (int pass = 0; pass < 3; pass++) {
        n = scan_procs(&v);
        sel = sw_xcalloc(n ? n : 1, sizeof *sel);
        select_tree(v, n, root, sel);
        signal_selected(v, n, sel, pass < 2 ? SIGSTOP : SIGKILL);
        free(v);
        free(sel);
    }
    /* Stragglers (in uninterruptible sleep, or forked during the passes). */
    for (int round = 0; round < 100; round++) {
        n = scan_procs(&v);
        sel = sw_xcalloc(n ? n : 1, sizeof *sel);
        size_t live = select_tree(v, n, root, sel);
        signal_selected(v, n, sel, SIGKILL);
        free(v);
        free(sel);
        if (live == 0) return;
        struct timespec ts = {0, 5 * 1000000};  /* dying processes need a moment */
        nanosleep(&ts, NULL);
    }
    sw_warn("process tree of %d still has members after repeated SIGKILL", (int)root);
}

void sw_proc_kill_tree(pid_t root)
{
    if (root > 1) kill_tree(root);
}

/* A process already sent SIGTERM, as (pid, command name): one that exec'd since has a
 * new name and gets it again, because a signal caught by the pre-exec copy of a shell is
 * lost in the exec. */
typedef struct termed { pid_t pid; char comm[17]; } termed;

/* Sends SIGTERM to the selected processes not in *done yet, and records them there. */
static void term_new(const struct pinfo *v, size_t n, const bool *sel, termed **done,
                     size_t *ndone)
{
    for (size_t i = 0; i < n; i++) {
        if (!sel[i] || v[i].state == 'Z') continue;
        bool seen = false;
        for (size_t j = 0; j < *ndone && !seen; j++)
            seen = (*done)[j].pid == v[i].pid && !strcmp((*done)[j].comm, v[i].comm);
        if (seen) continue;
        kill(v[i].pid, SIGTERM);
        kill(v[i].pid, SIGCONT);   /* a stopped process cannot act on SIGTERM */
        *done = sw_xrealloc(*done, (*ndone + 1) * sizeof **done);
        (*done)[*ndone].pid = v[i].pid;
        memcpy((*done)[*ndone].comm, v[i].comm, sizeof v[i].comm);
        (*ndone)++;
    }
}

size_t sw_proc_terminate_tree(pid_t root, int grace_ms, long *survivors, size_t max,
                              bool *forced)
{
    if (forced) *forced = false;
    if (root <= 1) return 0;
    termed *done = NULL;
    size_t ndone = 0;
    /* The grace period: processes that are not our children give no exit event, so look
     * again every 20 ms, for at most grace_ms. Each look also sends SIGTERM to members
     * that appeared since (a child forked just as the first signal went out). */
    for (int waited = 0;; waited += 20) {
        struct pinfo *v;
        size_t n = scan_procs(&v);
        bool *sel = sw_xcalloc(n ? n : 1, sizeof *sel);
        size_t live = select_tree(v, n, root, sel);
        term_new(v, n, sel, &done, &ndone);
        free(v);
        free(sel);
        if (live == 0) {
            free(done);
            return 0;
        }
        if (waited >= grace_ms) break;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    free(done);
    if (forced) *forced = true;
    kill_tree(root);
    struct pinfo *v;
    size_t n = scan_procs(&v);
    bool *sel = sw_xcalloc(n ? n : 1, sizeof *sel);
    size_t left = 0;
    select_tree(v, n, root, sel);
    for (size_t i = 0; i < n; i++)
        if (sel[i] && v[i].state != 'Z') {
            if (left < max) survivors[left] = v[i].pid;
            left++;
        }
    free(v);
    free(sel);
    return left;
}

unsigned long long sw_proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r <= 0) return 0;
    buf[r] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    /* Field 22 (starttime); after ')' come fields 3.. separated by spaces. */
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ') field++;
    return strtoull(p, NULL, 10);
}

void sw_proc_shutdown(void)
{
    pthread_mutex_lock(&reg_mu);
    stopping = true;
    pthread_mutex_unlock(&reg_mu);
    kill_tree(0);
}
