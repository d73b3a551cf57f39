/* server/guard.h — the dangerous-command guard.
 *
 * A command is normalized first (escape sequences, NULs, backslash-newlines, backslash
 * escapes and empty quotes inside words, $IFS, quotes; separators inside quoted strings
 * are blanked so quoted prose never looks like a new command; the payloads of
 * `bash -c '...'`, `sh -c`, `eval` are checked as commands too), then matched against
 * PCRE2 patterns that only fire in command position (after ; && || | ( $( ` or a newline,
 * optionally behind sudo/env/nohup/exec/time/command and VAR=value words).
 *
 * Hardline patterns are always refused. Approval patterns need the user's consent. */
#ifndef SW_GUARD_H
#define SW_GUARD_H

enum sw_guard_verdict { SW_GUARD_ALLOW, SW_GUARD_APPROVAL, SW_GUARD_HARDLINE };

typedef struct sw_guard_hit {
    enum sw_guard_verdict verdict;
    const char *key;            /* stable pattern key, e.g. "git_push_force" */
    const char *description;    /* what it does, for the model and the user */
} sw_guard_hit;

/* Starts compiling the patterns (on a thread: the first check waits for it). Returns 0;
 * a pattern that does not compile is logged and never matches. */
int sw_guard_init(void);
/* Checks a command; the most severe match wins. */
sw_guard_hit sw_guard_check(const char *command);
/* The normalized text the patterns see (caller frees); exposed for tests. */
char *sw_guard_normalize(const char *command);
/* How many approval / hardline patterns exist. */
int sw_guard_count(enum sw_guard_verdict v);

#endif
