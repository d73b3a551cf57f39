/* tests/bench/bench_guard.c — cost of the safety checks a call pays: the guard on a
 * typical 200-character command plus redaction of 10 kB of output. Prints p50/p90. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/guard.h"
#include "server/redact.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    if (sw_guard_init() < 0 || sw_redact_init(true) < 0) return 1;
    const char *cmd = "cd /srv/app && git fetch origin && git log --oneline -n 20 origin/main | "
                      "grep -v 'Merge pull request' > /tmp/log.txt; python3 -m pytest -q "
                      "tests/unit --maxfail=1 -k 'not slow' 2>&1 | tail -n 40";
    char *out = malloc(10241);
    for (int i = 0; i < 10240; i++) out[i] = "abcdefghij klmnopq\nrstuvwxyz 0123456789/"[i % 40];
    out[10240] = '\0';
    enum { N = 5000 };
    static double t[N];
    for (int i = 0; i < N; i++) {
        double t0 = now_us();
        sw_guard_hit h = sw_guard_check(cmd);
        size_t n;
        char *r = sw_redact(out, 10240, &n);
        t[i] = now_us() - t0;
        free(r);
        if (h.verdict != SW_GUARD_ALLOW) { puts("unexpected guard hit"); return 1; }
    }
    qsort(t, N, sizeof *t, cmp);
    static double g[N], r2[N];
    for (int i = 0; i < N; i++) {
        double t0 = now_us();
        sw_guard_check(cmd);
        double t1 = now_us();
        size_t n;
        free(sw_redact(out, 10240, &n));
        g[i] = t1 - t0;
        r2[i] = now_us() - t1;
    }
    qsort(g, N, sizeof *g, cmp);
    qsort(r2, N, sizeof *r2, cmp);
    printf("| guard alone | p50 %.1f us |\n| redaction alone | p50 %.1f us |\n", g[N / 2], r2[N / 2]);
    printf("| guard (200-char command) + redaction (10 kB output), %d runs | p50 %.1f us, p90 %.1f us |\n",
           N, t[N / 2], t[N * 9 / 10]);
    return 0;
}
