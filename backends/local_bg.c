/* backends/local_bg.c — background processes of the local backend.
 *
 * A background command runs under the background wrapper (snapshot, cwd, eval, exit-code
 * file) in its own session. Without a pty its merged output goes straight into the log
 * file the server chose, so it keeps running and logging even if the server dies; with a
 * pty the server reads the master. A process started by an earlier server can be adopted
 * after a crash when its pid still has the recorded kernel start time. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "backends/local.h"
#include "backends/script.h"
#include "server/log.h"
#include "server/util.h"

struct sw_bg {
    pid_t pid;
    unsigned long long start_time;
    sw_child *child;      /* our child; NULL when adopted */
    int pidfd;            /* adopted: readable once it ends */
    int master;           /* pty master, or -1 */
    char *exit_path;
    bool killed;
};

static int open_pty(int *master, char *slave, size_t n, char *err, size_t errlen)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, n) != 0) {
        snprintf(err, errlen, "cannot open a pseudo-terminal: %s", strerror(errno));
        if (m >= 0) close(m);
        return -1;
    }
    struct winsize ws = {.ws_row = 30, .ws_col = 120};
    ioctl(m, TIOCSWINSZ, &ws);
    sw_set_nonblock(m);
    *master = m;
    return 0;
}

int sw_local_bg_spawn(sw_backend *b, const sw_bg_req *req, sw_bg **out, sw_bg_info *info,
                      char *err, size_t errlen)
{
    int scr[2] = {-1, -1}, logfd = -1, master = -1;
    char slave[128];
    sw_bg *p = NULL;
    sw_local_settle(b);   /* the state of the commands before this one */
    if (req->pty) {
        if (open_pty(&master, slave, sizeof slave, err, errlen) < 0) return SW_BE_ERROR;
    } else {
        logfd = open(req->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (logfd < 0) {
            snprintf(err, errlen, "cannot create %s: %s", req->log_path, strerror(errno));
            return SW_BE_ERROR;
        }
    }
    if (pipe2(scr, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    char *tail[] = {(char *)sw_local_bash(b), "-c", ". /dev/fd/3", NULL};
    char **argv = sw_local_argv(b, tail);
    sw_spawn sp = {
        .path = argv[0], .argv = argv, .envp = sw_local_shell_env(b), .cwd = "/",
        .tty = req->pty ? slave : NULL, .fd_in = -1, .fd_out = logfd, .fd3 = scr[0], .fd4 = -1,
    };
    sw_child *child = sw_proc_spawn(&sp, err, errlen);
    free(argv);
    if (!child) goto fail;
    close(scr[0]);
    scr[0] = -1;
    char *script = sw_script_background(req->command, req->pty ? NULL : req->stdin_data,
                                        req->cwd, sw_local_snapshot(b),
                                        req->exit_path, req->pty ? "xterm-256color" : NULL,
                                        "exec 3<&-");
    if (sw_write_all(scr[1], script, strlen(script)) < 0)
        sw_warn("local: cannot hand the script to a background shell: %s", strerror(errno));
    free(script);
    close(scr[1]);
    if (logfd >= 0) close(logfd);
    p = sw_xcalloc(1, sizeof *p);
    p->pid = sw_child_pid(child);
    p->start_time = sw_proc_start_time(p->pid);
    p->child = child;
    p->pidfd = -1;
    p->master = master;
    p->exit_path = sw_strdup(req->exit_path);
    info->pid = p->pid;
    info->start_time = p->start_time;
    info->pty_fd = master;
    info->exit_fd = sw_child_fd(child);
    *out = p;
    return SW_BE_OK;
fail:
    if (scr[0] >= 0) close(scr[0]);
    if (scr[1] >= 0) close(scr[1]);
    if (logfd >= 0) close(logfd);
    if (master >= 0) close(master);
    return SW_BE_ERROR;
}

/* The code the wrapper wrote, or -1. */
static int exit_file_code(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    int code = -1;
    if (fscanf(f, "%d", &code) != 1) code = -1;
    fclose(f);
    return code;
}

void sw_local_bg_status(sw_bg *p, sw_bg_state *st)
{
    memset(st, 0, sizeof *st);
    int status;
    if (p->child) {
        st->running = !sw_child_done(p->child, &status);
        if (!st->running) {
            int code = exit_file_code(p->exit_path);
            st->exit_code = p->killed ? -15 : code >= 0 ? code : sw_exit_code(status);
        }
        return;
    }
    struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
    st->running = p->pidfd >= 0 ? poll(&pf, 1, 0) == 0
                                : sw_proc_start_time(p->pid) == p->start_time;
    if (!st->running) st->exit_code = p->killed ? -15 : exit_file_code(p->exit_path);
}

int sw_local_bg_write(sw_bg *p, const char *data, size_t len, bool eof)
{
    if (p->master < 0) return -1;
    /* The master is non-blocking: when the terminal's input is full, wait for room and go
     * on from where the last write stopped (never from the start: the process would get
     * the beginning twice). Two seconds without room: give up with EAGAIN. */
    struct pollfd pf = {.fd = p->master, .events = POLLOUT};
    for (size_t done = 0; done < len;) {
        ssize_t w = write(p->master, data + done, len - done);
        if (w > 0) { done += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN) return -1;
        int r = poll(&pf, 1, 2000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = EAGAIN;
            return -1;
        }
    }
    if (eof) {
        /* End-of-file on a terminal is the VEOF character at the start of a line. */
        struct termios t;
        char c = tcgetattr(p->master, &t) == 0 ? (char)t.c_cc[VEOF] : 4;
        if (write(p->master, &c, 1) != 1) return -1;
    }
    return 0;
}

int sw_local_bg_kill(sw_bg *p, int grace_ms, long *survivors, size_t *nsurv)
{
    if (!p->child && sw_proc_start_time(p->pid) != p->start_time) {
        *nsurv = 0;   /* gone, or the pid now belongs to another process: never signal it */
        return 0;
    }
    p->killed = true;
    bool forced = false;
    size_t n = sw_proc_terminate_tree(p->pid, grace_ms, survivors, *nsurv, &forced);
    *nsurv = n;
    if (p->child) sw_child_wait(p->child, 1000);
    return n > 0 ? -1 : forced ? 1 : 0;
}

sw_bg *sw_local_bg_adopt(long pid, unsigned long long start_time, const char *exit_path,
                         sw_bg_info *info)
{
    if (pid <= 1 || sw_proc_start_time((pid_t)pid) != start_time) return NULL;
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    /* Check again: the pidfd now pins the process, so a match means it is the same one. */
    if (fd < 0 || sw_proc_start_time((pid_t)pid) != start_time) {
        if (fd >= 0) close(fd);
        return NULL;
    }
    sw_bg *p = sw_xcalloc(1, sizeof *p);
    p->pid = (pid_t)pid;
    p->start_time = start_time;
    p->pidfd = fd;
    p->master = -1;
    p->exit_path = sw_strdup(exit_path);
    info->pid = pid;
    info->start_time = start_time;
    info->pty_fd = -1;
    info->exit_fd = fd;
    return p;
}

void sw_local_bg_free(sw_bg *p)
{
    if (!p) return;
    if (p->child) sw_child_free(p->child);
    if (p->pidfd >= 0) close(p->pidfd);
    if (p->master >= 0) close(p->master);
    free(p->exit_path);
    free(p);
}
