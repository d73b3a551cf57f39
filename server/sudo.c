/* server/sudo.c — see sudo.h. A small scanner: it tracks quotes and comments and knows
 * where a command starts (start, after ; & | && || ( newline `$(` or a backtick, past
 * VAR=value words and an `env` prefix). */
#include "server/sudo.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "server/util.h"

bool sw_sudo_reads_stdin(const char *command)
{
    /* Mark every command-position sudo, then look for -S (or --stdin) right after it. */
    int n;
    char *marked = sw_sudo_rewrite(command, &n);
    if (!marked) return false;
    bool found = false;
    for (char *p = strstr(marked, " -S -p ''"); p && !found; p = strstr(p + 1, " -S -p ''")) {
        char *a = p + 9;
        while (*a == ' ' || *a == '\t') a++;
        while (*a == '-' && !found) {   /* the options given to that sudo */
            size_t wl = strcspn(a, " \t");
            if (!strncmp(a, "--stdin", 7)) found = true;
            else if (a[1] != '-' && wl > strcspn(a, "S")) found = true;
            /* Options that take a value: skip it too. */
            bool takes = wl == 2 && strchr("ugpChDrtUT", a[1]);
            a += wl;
            while (*a == ' ' || *a == '\t') a++;
            if (takes) {
                a += strcspn(a, " \t");
                while (*a == ' ' || *a == '\t') a++;
            }
        }
    }
    free(marked);
    return found;
}

static bool is_word_end(char c) { return c == '\0' || strchr(" \t\n;&|()<>`", c) != NULL; }

char *sw_sudo_rewrite(const char *cmd, int *count)
{
    size_t n = strlen(cmd);
    /* Each sudo word (at least 4 bytes of cmd) gains the 9 bytes of " -S -p ''". */
    char *out = sw_xmalloc(n + 9 * (n / 4 + 1) + 1);
    size_t o = 0;
    bool at_cmd = true;   /* the next word would be a command name */
    *count = 0;
    for (size_t i = 0; i < n;) {
        char c = cmd[i];
        if (c == ' ' || c == '\t') { out[o++] = cmd[i++]; continue; }
        if (c == '#' && at_cmd) {   /* a comment runs to the end of the line */
            while (i < n && cmd[i] != '\n') out[o++] = cmd[i++];
            continue;
        }
        if (strchr(";&|(\n`", c) || (c == '$' && cmd[i + 1] == '(')) {
            out[o++] = cmd[i++];
            if (c == '$') out[o++] = cmd[i++];
            at_cmd = true;
            continue;
        }
        if (c == '<' || c == '>' || c == ')') {   /* redirection or group end: not a word */
            out[o++] = cmd[i++];
            continue;
        }
        /* A word: copy it, noting its unquoted text. */
        size_t start = i;
        char *plain = sw_xmalloc(n + 1);
        size_t pl = 0;
        char q = 0;
        while (i < n && (q || !is_word_end(cmd[i]))) {
            char d = cmd[i];
            if (q) {
                if (d == q) q = 0;
                else plain[pl++] = d;
            } else if (d == '\'' || d == '"') {
                q = d;
            } else if (d == '\\' && i + 1 < n) {
                plain[pl++] = cmd[++i];
            } else {
                plain[pl++] = d;
            }
            i++;
        }
        plain[pl] = '\0';
        memcpy(out + o, cmd + start, i - start);
        o += i - start;
        if (at_cmd) {
            const char *base = strrchr(plain, '/');
            base = base ? base + 1 : plain;
            bool assignment = strchr(plain, '=') && plain[0] != '=' && !strchr(plain, '/');
            if (!strcmp(base, "sudo")) {
                memcpy(out + o, " -S -p ''", 9);
                o += 9;
                (*count)++;
                at_cmd = true;     /* what follows sudo (after options) is a command again */
            } else if (!assignment && strcmp(plain, "env") && strcmp(plain, "time") &&
                       strcmp(plain, "nohup") && strcmp(plain, "exec") && plain[0] != '-') {
                at_cmd = false;
            }
        }
        free(plain);
    }
    out[o] = '\0';
    if (*count == 0) {
        free(out);
        return NULL;
    }
    return out;
}
