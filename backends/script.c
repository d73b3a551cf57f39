/* backends/script.c — builds the wrapper and snapshot scripts (see script.h). Everything
 * after the user's command uses builtins only: each external program or subshell would
 * add about a millisecond and a half to every call. */
#include "backends/script.h"

#include <stdlib.h>
#include <string.h>

#include "server/util.h"

/* The state dump: exported variables, functions and aliases, plus the options a
 * non-interactive shell needs to use them. Runs inside { } so no subshell is forked. */
#define DUMP_STATE                                                                        \
    "{ export -p; declare -f; alias -p; "                                                 \
    "printf '%%s\\n' 'shopt -s expand_aliases' 'set +e' 'set +u'; } >%s 2>/dev/null"

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
    char *snap = sw_shell_quote(o->snapshot);
    char *cwd = sw_script_quote_dir(o->cwd);
    char *cmd = sw_shell_quote(o->command);
    char *dump = NULL, *publish = NULL;
    if (o->snapshot_out) {
        char *out = sw_shell_quote(o->snapshot_out);
        dump = sw_printf(DUMP_STATE "\n", out);
        if (o->publish) publish = sw_printf("mv -f %s %s 2>/dev/null\n", out, snap);
        free(out);
    }
    char *s = sw_printf(
        "%s%s"
        "source %s >/dev/null 2>&1\n"
        "export PAGER=cat GIT_PAGER=cat\n"
        "builtin cd -- %s || exit 126\n"
        "eval %s\n"
        "__sw_ec=$?\n"
        "%s%s"
        "builtin printf '\\n__SHELLWIRE_CWD_%s__%%s__SHELLWIRE_CWD_%s__\\n' \"$PWD\"\n"
        "exit $__sw_ec\n",
        o->prologue ? o->prologue : "", o->prologue ? "\n" : "", snap, cwd, cmd,
        dump ? dump : "", publish ? publish : "", o->marker_id, o->marker_id);
    free(snap);
    free(cwd);
    free(cmd);
    free(dump);
    free(publish);
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
