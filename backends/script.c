/* backends/script.c — builds the wrapper and snapshot scripts (see script.h). Everything
 * after the user's command uses builtins only: each external program or subshell would
 * add about a millisecond and a half to every call. */
#include "backends/script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/util.h"

/* The state dump: exported variables, functions and aliases, plus the options a
 * non-interactive shell needs to use them. Runs inside { } so no subshell is forked. */
#define DUMP_STATE                                                                        \
    "{ export -p; declare -f; alias -p; "                                                 \
    "printf '%%s\\n' 'shopt -s expand_aliases' 'set +e' 'set +u'; } >%s 2>/dev/null"

/* $'...' quoting: keeps the script's command on a single line (control characters become
 * escapes) while the shell still sees exactly the original bytes. */
static char *ansi_quote(const char *s)
{
    size_t n = 3;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += 4;
    char *out = sw_xmalloc(n + 1), *o = out;
    *o++ = '$';
    *o++ = '\'';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '\\' || c == '\'') { *o++ = '\\'; *o++ = (char)c; }
        else if (c == '\n') { *o++ = '\\'; *o++ = 'n'; }
        else if (c == '\t') { *o++ = '\\'; *o++ = 't'; }
        else if (c < 0x20 || c == 0x7f) o += sprintf(o, "\\x%02x", c);
        else *o++ = (char)c;
    }
    *o++ = '\'';
    *o = '\0';
    return out;
}

char *sw_script_quote_dir(const char *dir)
{
    if (!strcmp(dir, "~")) return sw_strdup("~");
    if (!strncmp(dir, "~/", 2)) {
        char *rest = sw_shell_quote(dir + 2);
        char *r = sw_printf("~/%s", rest);
        free(rest);
        return r;
    }
    return sw_shell_quote(dir);
}

char *sw_script_wrap(const sw_script_opts *o)
{
    char *snap = o->snapshot ? sw_shell_quote(o->snapshot) : NULL;
    char *load = snap ? sw_printf("source %s >/dev/null 2>&1; ", snap) : NULL;
    char *cwd = sw_script_quote_dir(o->cwd);
    char *cmd;
    if (o->stdin_data) {
        char *q = ansi_quote(o->command), *d = ansi_quote(o->stdin_data);
        cmd = sw_printf("%s <<< %s", q, d);
        free(q);
        free(d);
    } else {
        cmd = ansi_quote(o->command);
    }
    char *dump = NULL;
    if (o->snapshot_out) {
        char *out = sw_shell_quote(o->snapshot_out);
        dump = sw_printf(DUMP_STATE "\n", out);
        free(out);
    }
    /* Everything up to the eval shares line 1, so bash's messages about the command
     * ("bash: line 3: ...") count lines the way the user wrote them. */
    /* A vanished working directory fails this call (126) but moves the session to the
     * nearest existing parent, reported through the marker, so the next call works. */
    char *enter = sw_printf(
        "builtin cd -- %s 2>/dev/null || { __sw_d=%s; "
        "builtin printf 'shellwire: the directory %%s does not exist (any more), so the command "
        "did not run.\\n' \"$__sw_d\"; "
        "while ! builtin cd -- \"${__sw_d:-/}\" 2>/dev/null; do __sw_d=${__sw_d%%/*}; done; "
        "builtin printf '\\n__SHELLWIRE_CWD_%s__%%s__SHELLWIRE_CWD_%s__\\n' \"$PWD\"; exit 126; }; ",
        cwd, cwd, o->marker_id, o->marker_id);
    char *marker = sw_printf(
        "builtin printf '\\n__SHELLWIRE_CWD_%s__%%s__SHELLWIRE_CWD_%s__\\n' \"$PWD\"\n",
        o->marker_id, o->marker_id);
    char *s;
    if (o->status_fd > 0) {
        s = sw_printf(
            "%s%sbuiltin printf 'S\\n' >&%d; %s"
            "export PAGER=cat GIT_PAGER=cat; %seval %s %d>&-\n"
            "__sw_ec=$?\n"
            "%s"
            "builtin printf '%%s\\n' \"$__sw_ec\" >&%d\n"
            "%s"
            "builtin printf 'D\\n' >&%d\n"
            "exit $__sw_ec\n",
            o->prologue ? o->prologue : "", o->prologue ? "; " : "", o->status_fd,
            load ? load : "", enter, cmd, o->status_fd, marker, o->status_fd, dump ? dump : "",
            o->status_fd);
    } else {
        s = sw_printf(
            "%s%s%s"
            "export PAGER=cat GIT_PAGER=cat; %seval %s\n"
            "__sw_ec=$?\n"
            "%s%s%s%s"
            "exit $__sw_ec\n",
            o->prologue ? o->prologue : "", o->prologue ? "; " : "", load ? load : "", enter, cmd,
            dump ? dump : "", marker, o->epilogue ? o->epilogue : "",
            o->epilogue ? "\n" : "");
    }
    free(marker);
    free(enter);
    free(snap);
    free(load);
    free(cwd);
    free(cmd);
    free(dump);
    return s;
}

char *sw_script_snapshot_init(const char *snapshot_tmp, const char *prologue)
{
    char *out = sw_shell_quote(snapshot_tmp);
    char *s = sw_printf("%s%s" DUMP_STATE "\n", prologue ? prologue : "",
                        prologue ? "\n" : "", out);
    free(out);
    return s;
}

char *sw_script_background(const char *command, const char *stdin_data, const char *cwd,
                           const char *snapshot, const char *exit_path, const char *term,
                           const char *prologue)
{
    char *snap = sw_shell_quote(snapshot);
    char *dir = sw_script_quote_dir(cwd);
    char *cmd = ansi_quote(command);
    if (stdin_data) {
        char *d = ansi_quote(stdin_data), *both = sw_printf("%s <<< %s", cmd, d);
        free(d);
        free(cmd);
        cmd = both;
    }
    char *ex = sw_shell_quote(exit_path);
    char *t = term ? sw_shell_quote(term) : NULL;
    char *tset = t ? sw_printf("export TERM=%s; ", t) : sw_strdup("");
    /* The EXIT trap records the status however the shell ends: normally, through an
     * `exit` inside the command, or after a failed cd (not when killed by a signal). */
    char *s = sw_printf(
        "%s%strap 'builtin printf \"%%s\\n\" \"$?\" >%s' EXIT; "
        "source %s >/dev/null 2>&1; %sexport PAGER=cat GIT_PAGER=cat; "
        "builtin cd -- %s || exit 126; eval %s\n",
        prologue ? prologue : "", prologue ? "; " : "", ex, snap, tset, dir, cmd);
    free(snap);
    free(dir);
    free(cmd);
    free(ex);
    free(t);
    free(tset);
    return s;
}
