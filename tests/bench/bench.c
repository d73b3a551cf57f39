/* tests/bench/bench.c — measures shellwire the way a client sees it, next to a bare
 * `bash -c 'echo hi'` spawn timed by the same code:
 *   cold start (spawn -> initialize answer), idle RSS, echo round trips (sequential and 8
 *   concurrent; p50/p90/p99), and draining `head -c 1G /dev/zero` (MB/s, peak RSS).
 * Usage: bench SHELLWIRE_BIN [N]. Prints a Markdown table. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    int i = (int)(p * n);
    if (i >= n) i = n - 1;
    return v[i];
}

typedef struct server {
    pid_t pid;
    int in, out;
    char *buf;
    size_t len, cap, consumed;
} server;

static void srv_start(server *s, const char *bin)
{
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC) || pipe2(b, O_CLOEXEC)) { perror("pipe"); exit(1); }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, a[0], 0);
    posix_spawn_file_actions_adddup2(&fa, b[1], 1);
    char *argv[] = {(char *)bin, NULL};
    if (posix_spawn(&s->pid, bin, &fa, NULL, argv, environ)) { perror("spawn"); exit(1); }
    close(a[0]);
    close(b[1]);
    s->in = a[1];
    s->out = b[0];
    s->cap = 1 << 20;
    s->buf = malloc(s->cap);
    s->len = s->consumed = 0;
}

static void srv_send(server *s, const char *line)
{
    size_t n = strlen(line);
    while (n) {
        ssize_t w = write(s->in, line, n);
        if (w < 0) { if (errno == EINTR) continue; perror("write"); exit(1); }
        line += w;
        n -= (size_t)w;
    }
}

/* Reads one line into *out (pointer into the buffer, valid until the next call). */
static char *srv_line(server *s)
{
    if (s->consumed) {
        memmove(s->buf, s->buf + s->consumed, s->len - s->consumed);
        s->len -= s->consumed;
        s->consumed = 0;
    }
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->len);
        if (nl) {
            *nl = '\0';
            s->consumed = (size_t)(nl - s->buf) + 1;
            return s->buf;
        }
        if (s->len == s->cap) s->buf = realloc(s->buf, s->cap *= 2);
        ssize_t r = read(s->out, s->buf + s->len, s->cap - s->len);
        if (r <= 0) { fprintf(stderr, "server closed stdout\n"); exit(1); }
        s->len += (size_t)r;
    }
}

/* Waits for the answer to request `id` (ignores notifications); returns its line. */
static char *srv_wait(server *s, long id)
{
    char key[64];
    snprintf(key, sizeof key, "\"id\":%ld,", id);
    for (;;) {
        char *l = srv_line(s);
        if (strstr(l, key)) return l;
    }
}

static long status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl)) v = atol(line + fl + 1);
    fclose(f);
    return v;
}

static const char *call_echo =
    "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"terminal\","
    "\"arguments\":{\"command\":\"echo hi\"}}}\n";

static void run_calls(server *s, long *next_id, int n, int conc, double *lat)
{
    double *start = calloc((size_t)(*next_id + n + conc + 8), sizeof *start);
    long base = *next_id;
    int sent = 0, done = 0;
    char line[512];
    while (sent < conc && sent < n) {
        start[sent] = now_ms();
        snprintf(line, sizeof line, call_echo, base + sent);
        srv_send(s, line);
        sent++;
    }
    while (done < n) {
        char *l = srv_line(s);
        char *p = strstr(l, "\"id\":");
        if (!p || !strstr(l, "\"result\"")) continue;
        long id = atol(p + 5);
        if (!strstr(l, "\"output\":\"hi\"")) { fprintf(stderr, "unexpected: %.200s\n", l); exit(1); }
        lat[done++] = now_ms() - start[id - base];
        if (sent < n) {
            start[sent] = now_ms();
            snprintf(line, sizeof line, call_echo, base + sent);
            srv_send(s, line);
            sent++;
        }
    }
    *next_id = base + n;
    free(start);
}

static double bare_spawn_once(void)
{
    double t = now_ms();
    int p[2];
    if (pipe2(p, O_CLOEXEC)) exit(1);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    char *argv[] = {"bash", "-c", "echo hi", NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/bin/bash", &fa, NULL, argv, environ)) exit(1);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    char buf[64];
    while (read(p[0], buf, sizeof buf) > 0) {}
    close(p[0]);
    waitpid(pid, NULL, 0);
    return now_ms() - t;
}

static void row(const char *what, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    printf("| %s | %d | %.3f | %.3f | %.3f |\n", what, n, pct(v, n, .5), pct(v, n, .9), pct(v, n, .99));
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s SHELLWIRE_BIN [N]\n", argv[0]); return 2; }
    int n = argc > 2 ? atoi(argv[2]) : 500;
    signal(SIGPIPE, SIG_IGN);
    double *lat = calloc((size_t)n, sizeof *lat);

    /* Cold start: the median of 20 fresh servers. */
    double cold[20];
    long idle_rss = 0;
    for (int i = 0; i < 20; i++) {
        server s;
        double t = now_ms();
        srv_start(&s, argv[1]);
        srv_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}\n");
        srv_wait(&s, 1);
        cold[i] = now_ms() - t;
        if (i == 19) idle_rss = status_kb(s.pid, "VmRSS:");
        close(s.in);
        waitpid(s.pid, NULL, 0);
        close(s.out);
        free(s.buf);
    }
    qsort(cold, 20, sizeof *cold, cmp);

    server s;
    srv_start(&s, argv[1]);
    srv_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}\n");
    srv_wait(&s, 1);
    long id = 10;
    run_calls(&s, &id, 20, 1, lat);     /* warm-up */

    printf("| measurement | n | p50 ms | p90 ms | p99 ms |\n|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) lat[i] = bare_spawn_once();
    row("bare `bash -c 'echo hi'` spawn", lat, n);
    run_calls(&s, &id, n, 1, lat);
    row("shellwire `echo hi`, sequential", lat, n);
    run_calls(&s, &id, n, 8, lat);
    row("shellwire `echo hi`, 8 concurrent", lat, n);
    /* An agent thinks between calls; with 20 ms pauses the spare shell is always ready. */
    int paced = n < 200 ? n : 200;
    for (int i = 0; i < paced; i++) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        run_calls(&s, &id, 1, 1, lat + i);
    }
    row("shellwire `echo hi`, 20 ms between calls", lat, paced);
    long rss_after = status_kb(s.pid, "VmRSS:");

    /* Draining 1 GiB of output. */
    char line[512];
    snprintf(line, sizeof line,
             "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"terminal\","
             "\"arguments\":{\"command\":\"head -c 1G /dev/zero\",\"timeout\":300}}}\n", id);
    double t = now_ms();
    srv_send(&s, line);
    char *l = srv_wait(&s, id);
    double drain = now_ms() - t;
    int ok = strstr(l, "\"output_total_chars\":1073741824") != NULL;
    long hwm = status_kb(s.pid, "VmHWM:");
    printf("\n| measurement | value |\n|---|---|\n");
    printf("| cold start (spawn -> initialize answer), median of 20 | %.2f ms |\n", cold[10]);
    printf("| idle RSS after initialize | %.1f MB |\n", idle_rss / 1024.0);
    printf("| RSS after %d calls | %.1f MB |\n", 2 * n + 20, rss_after / 1024.0);
    printf("| drain `head -c 1G /dev/zero` | %.0f MB/s (%.2f s)%s |\n",
           1073741824.0 / 1e6 / (drain / 1e3), drain / 1e3, ok ? "" : " (UNEXPECTED RESULT)");
    printf("| peak RSS of the server (VmHWM) | %.1f MB |\n", hwm / 1024.0);
    close(s.in);
    waitpid(s.pid, NULL, 0);

    /* CPU per call (server + every shell it ran), from a fresh server: steadier than
     * latency on a busy machine. */
    struct rusage before, after;
    getrusage(RUSAGE_CHILDREN, &before);
    server c;
    srv_start(&c, argv[1]);
    srv_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}\n");
    srv_wait(&c, 1);
    id = 10;
    run_calls(&c, &id, n, 1, lat);
    close(c.in);
    waitpid(c.pid, NULL, 0);
    getrusage(RUSAGE_CHILDREN, &after);
    double cpu = (after.ru_utime.tv_sec - before.ru_utime.tv_sec + after.ru_stime.tv_sec -
                  before.ru_stime.tv_sec) * 1e3 +
                 (after.ru_utime.tv_usec - before.ru_utime.tv_usec + after.ru_stime.tv_usec -
                  before.ru_stime.tv_usec) / 1e3;
    printf("| CPU time per `echo hi` call (server + shells) | %.3f ms |\n", cpu / n);
    return ok ? 0 : 1;
}
