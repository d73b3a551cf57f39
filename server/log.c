/* server/log.c — stderr logging with a level filter; one write per line so lines from
 * different threads never interleave. */
#include "server/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int g_level = SW_LOG_WARNING;
static const char *names[] = {"debug", "info", "notice", "warning", "error", "off"};

int sw_log_parse_level(const char *s)
{
    for (int i = 0; i <= SW_LOG_OFF; i++)
        if (!strcasecmp(s, names[i])) return i;
    if (!strcasecmp(s, "critical") || !strcasecmp(s, "alert") || !strcasecmp(s, "emergency"))
        return SW_LOG_ERROR;
    return -1;
}

void sw_log_set_level(int level) { g_level = level; }

void sw_log(int level, const char *fmt, ...)
{
    if (level < g_level) return;
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "shellwire: %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(2, buf, len);
    (void)w;
}
