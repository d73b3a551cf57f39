/* server/tools_terminal.c — the terminal tool: checks arguments, refuses foreground
 * commands that would never return, picks the task's environment, runs the command on
 * its backend, sends progress, and turns the output into the result envelope.
 *
 * Bad argument values are tool errors (isError with the error envelope), never protocol
 * errors, so the model sees what to fix. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/env.h"
#include "server/guard.h"
#include "server/log.h"
#include "server/mcp.h"
#include "server/output.h"
#include "server/redact.h"
#include "server/registry.h"
#include "server/sudo.h"
#include "server/tools.h"
#include "server/util.h"

static const sw_config *cfg;
static char *spill_dir;
static char *allowlist_path;
static char *sudo_password;     /* SUDO_PASSWORD as the server started; never passed on */

static const sw_tool tool_list[] = {
    {sw_schema_terminal, sw_terminal_call, sw_terminal_arrive},
    {sw_schema_process, sw_process_call, sw_process_arrive},
};

const sw_tool *sw_tools_all(size_t *n)
{
    *n = sizeof tool_list / sizeof *tool_list;
    return tool_list;
}

json_t *sw_tool_error(const char *status, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sw_utf8_sanitize(msg);      /* a cut or a backend's text may not be UTF-8 */
    return json_pack("{s:s, s:i, s:s, s:s}", "output", "", "exit_code", -1, "error", msg,
                     "status", status ? status : "error");
}

/* The envelope of an unreachable backend: not the command's fault, worth retrying. */
static json_t *degraded(const char *reason, const char *hint)
{
    char *r = sw_strdup(reason);
    sw_utf8_sanitize(r);        /* the backend's text may not be UTF-8 */
    json_t *res = json_pack("{s:s, s:i, s:s+, s:s, s:s, s:s}", "output", "", "exit_code", -1,
                            "error", "Terminal backend degraded: ", r, "status", "degraded",
                            "reason", r, "retry_hint", hint);
    free(r);
    return res;
}

/* ---- foreground guidance ---------------------------------------------------------- */

/* A word in command position: start, or after ; & | ( newline $( or `, with optional
 * VAR=value assignments and sudo/env/exec/time/command prefixes. */
#define CMDPOS "(?:^|[;&|(\\n`]|\\$\\()\\s*(?:[A-Za-z_][A-Za-z0-9_]*=\\S*\\s+)*" \
               "(?:(?:sudo|env|exec|time|command|npx|bunx|pnpm\\s+exec)\\s+)*"

struct guide {
    const char *pattern;
    const char *message;
    pcre2_code *re;
};

static struct guide guides[] = {
    {CMDPOS "(?:nohup|disown)\\b",
     "This command detaches a process with nohup/disown in the foreground, so it "
     "cannot be tracked. Run the long-lived part with background: true instead (without the "
     "wrapper), then check on it and run follow-up commands in separate calls.", NULL},
    {"(?<![&>|])&\\s*(?:#[^\\n]*)?$",
     "This command ends with '&'. Run long-lived processes with background: true instead of "
     "a trailing '&', then check on them and run follow-up commands in separate calls.", NULL},
    {CMDPOS "(?:(?:npm|pnpm|yarn|bun)\\s+(?:run\\s+)?(?:dev|start|serve|watch)\\b"
     "|docker[ -]compose\\s+up\\b(?![^;&|\\n]*\\s(?:-d|--detach)\\b)"
     "|next\\s+(?:dev|start)\\b|vite(?:\\s+(?:dev|serve|preview))?(?:\\s|$)|nodemon\\b"
     "|uvicorn\\b|gunicorn\\b|flask\\s+run\\b|python[0-9.]*\\s+-m\\s+http\\.server\\b"
     "|python[0-9.]*\\s+manage\\.py\\s+runserver\\b|rails\\s+s(?:erver)?\\b"
     "|jupyter\\s+(?:notebook|lab)\\b|php\\s+-S\\b)",
     "This command looks like it starts a server or watcher that never exits; in the "
     "foreground it would hold the call until the timeout. Start it with background: true, "
     "check that it is ready (its log or a health request), then run tests in separate "
     "calls.", NULL},
};
#define NGUIDES (sizeof guides / sizeof guides[0])
static pcre2_code *re_help;

/* Replaces the contents of quoted strings with spaces so prose never matches. */
static char *blank_quotes(const char *s)
{
    char *o = sw_strdup(s);
    char q = 0;
    for (char *p = o; *p; p++) {
        if (q) {
            if (*p == '\\' && q == '"' && p[1]) { *p++ = ' '; *p = ' '; continue; }
            if (*p == q) q = 0;
            else *p = ' ';
        } else if (*p == '\\' && p[1]) {
            p++;
        } else if (*p == '\'' || *p == '"') {
            q = *p;
        }
    }
    return o;
}

static bool matches(pcre2_code *re, const char *s)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static const char *guidance(const char *command)
{
    char *b = blank_quotes(command);
    const char *msg = NULL;
    if (!matches(re_help, b))
        for (size_t i = 0; i < NGUIDES && !msg; i++)
            if (matches(guides[i].re, b)) msg = guides[i].message;
    free(b);
    return msg;
}

static pcre2_code *compile(const char *pat)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_MULTILINE | PCRE2_UTF, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        sw_error("pattern error at %zu: %s", (size_t)off, (char *)msg);
    }
    return re;
}

int sw_terminal_init(const sw_config *c)
{
    cfg = c;
    allowlist_path = sw_printf("%s/allowlist", c->state_dir);
    const char *pw = getenv("SUDO_PASSWORD");
    if (pw) sudo_password = sw_strdup(pw);
    if (sw_guard_init() < 0 || sw_redact_init(c->redact != 0) < 0) return -1;
    spill_dir = sw_printf("%s/output", c->state_dir);
    re_help = compile("(?:\\s--help|\\s--version|\\s-h|\\s-V)(?:\\s|$)");
    if (!re_help) return -1;
    for (size_t i = 0; i < NGUIDES; i++)
        if (!(guides[i].re = compile(guides[i].pattern))) return -1;
    return 0;
}

/* ---- the dangerous-command guard ---------------------------------------------------- */

/* True when the user listed this rule key in the allowlist file (one key per line). */
static bool allowlisted(const char *key)
{
    FILE *f = fopen(allowlist_path, "re");
    if (!f) return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, " \t\r\n#")] = '\0';
        found = !strcmp(line, key);
    }
    fclose(f);
    return found;
}

static pthread_mutex_t session_mu = PTHREAD_MUTEX_INITIALIZER;
static char **session_keys;     /* rules the user allowed for the rest of this session */
static size_t nsession_keys;

static bool session_allowed(const char *key)
{
    pthread_mutex_lock(&session_mu);
    bool found = false;
    for (size_t i = 0; i < nsession_keys && !found; i++) found = !strcmp(session_keys[i], key);
    pthread_mutex_unlock(&session_mu);
    return found;
}

static void allow_for_session(const char *key)
{
    pthread_mutex_lock(&session_mu);
    session_keys = sw_xrealloc(session_keys, (nsession_keys + 1) * sizeof *session_keys);
    session_keys[nsession_keys++] = sw_strdup(key);
    pthread_mutex_unlock(&session_mu);
}

/* Adds a rule key to the allowlist file (rewritten whole, then renamed into place). */
static void allow_always(const char *key)
{
    char *tmp = sw_printf("%s.%ld.tmp", allowlist_path, (long)getpid());
    FILE *out = fopen(tmp, "we");
    if (!out) { free(tmp); return; }
    FILE *in = fopen(allowlist_path, "re");
    if (in) {
        char line[512];
        while (fgets(line, sizeof line, in)) fputs(line, out);
        fclose(in);
    }
    fprintf(out, "%s\n", key);
    if (fclose(out) == 0) rename(tmp, allowlist_path);
    else unlink(tmp);
    free(tmp);
}

/* Asks the user through MCP elicitation. Returns "once", "session", "always", or NULL for
 * anything else (declined, dismissed, timed out, the client failed). */
static const char *ask_user(const sw_guard_hit *h, const char *command, sw_cancel *cancel)
{
    char *msg = sw_printf("The assistant wants to run a command that needs your approval "
                          "(%s):\n\n%.2000s\n\nAllow it?", h->description, command);
    json_t *params = json_pack(
        "{s:s, s:{s:s, s:{s:{s:s, s:s, s:[ssss], s:[ssss]}}, s:[s]}}", "message", msg,
        "requestedSchema", "type", "object", "properties", "decision", "type", "string",
        "title", "Run this command?", "enum", "once", "session", "always", "deny",
        "enumNames", "Yes, this once", "Yes, and allow this rule for the rest of the session",
        "Yes, and always allow this rule", "No", "required", "decision");
    free(msg);
    json_t *ans = sw_rpc_request("elicitation/create", params, (int)(cfg->approval_timeout_s * 1000), cancel);
    const char *choice = NULL;
    json_t *res = json_object_get(ans, "result");
    if (json_is_string(json_object_get(res, "action")) &&
        !strcmp(json_string_value(json_object_get(res, "action")), "accept")) {
        const char *d = json_string_value(json_object_get(json_object_get(res, "content"), "decision"));
        if (d && !strcmp(d, "once")) choice = "once";
        else if (d && !strcmp(d, "session")) choice = "session";
        else if (d && !strcmp(d, "always")) choice = "always";
    }
    json_decref(ans);
    return choice;
}

/* The refusal for a command the guard stops, or NULL when it may run. Sandboxed backends
 * skip approval (the sandbox contains the damage); the hardline list applies everywhere. */
static json_t *guard(const char *command, const sw_backend_ops *ops, sw_cancel *cancel)
{
    sw_guard_hit h = sw_guard_check(command);
    if (h.verdict == SW_GUARD_HARDLINE)
        return sw_tool_error("blocked", "Refused: shellwire never runs this (%s; rule %s). "
                             "It was not run. Do not try to get around this rule.",
                             h.description, h.key);
    if (h.verdict != SW_GUARD_APPROVAL || !strcmp(cfg->approval, "off") ||
        ops->sandboxed || allowlisted(h.key) || session_allowed(h.key))
        return NULL;
    if (!strcmp(cfg->approval, "deny"))
        return sw_tool_error("blocked", "Refused: this command needs approval (%s; rule %s) and "
                             "approvals are switched off (SHELLWIRE_APPROVAL=deny). It was not "
                             "run; find a safer way to reach the goal.", h.description, h.key);
    if (sw_mcp_client_can_elicit()) {
        const char *choice = ask_user(&h, command, cancel);
        if (choice && !strcmp(choice, "session")) allow_for_session(h.key);
        if (choice && !strcmp(choice, "always")) allow_always(h.key);
        if (choice) return NULL;
        return sw_tool_error("blocked", "The user did not approve this command (%s; rule %s), so "
                             "it was not run. Do not retry it; ask the user what to do instead.",
                             h.description, h.key);
    }
    json_t *res = sw_tool_error("pending_approval",
                                "This command needs the user's approval (%s; rule %s), so it was "
                                "not run. Ask the user; to allow it they can add the line \"%s\" "
                                "to %s, or start shellwire with SHELLWIRE_APPROVAL=off.",
                                h.description, h.key, h.key, allowlist_path);
    json_object_set_new(res, "approval_key", json_string(h.key));
    return res;
}

/* ---- the call ----------------------------------------------------------------------- */

static void release_env(void *env) { sw_env_release(env); }

typedef struct call_ctx {
    sw_req *req;
    sw_out *out;
    long ticks;
} call_ctx;

static void on_data(void *ctx, const char *buf, size_t len)
{
    sw_out_feed(((call_ctx *)ctx)->out, buf, len);
}

static void on_tick(void *ctx)
{
    call_ctx *c = ctx;
    c->ticks++;
    if (!c->req->progress_token) return;
    char *line = sw_out_last_line(c->out);
    char *msg = line ? line : sw_printf("running for %lds", c->ticks);
    sw_rpc_notify("notifications/progress",
                  json_pack("{s:O, s:i, s:s}", "progressToken", c->req->progress_token,
                            "progress", (json_int_t)c->ticks, "message", msg));
    free(msg);
}

static bool bad_path_chars(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return true;
    return false;
}

/* The environment key of a call, or NULL when task_id is not a usable string. */
static const char *task_of(json_t *args)
{
    json_t *jtask = json_object_get(args, "task_id");
    if (!jtask || json_is_null(jtask)) return "default";
    if (!json_is_string(jtask) || json_string_length(jtask) == 0 ||
        strlen(json_string_value(jtask)) != json_string_length(jtask))
        return NULL;
    return json_string_value(jtask);
}

/* Calls in one environment take turns in arrival order, so the turn is taken here, on the
 * reader thread, not when a worker picks the call up. */
void sw_terminal_arrive(sw_req *r, json_t *args)
{
    const char *task = task_of(args);
    if (task) r->tool_env = sw_env_take_turn(task, &r->tool_turn);
}

static json_t *call(sw_req *r, json_t *args, bool *turn_ended);

json_t *sw_terminal_call(sw_req *r, json_t *args)
{
    bool ended = false;
    json_t *res = call(r, args, &ended);
    if (r->tool_env && !ended) sw_env_end_turn(r->tool_env, r->tool_turn);
    return res;
}

static json_t *call(sw_req *r, json_t *args, bool *turn_ended)
{
    json_t *jcmd = json_object_get(args, "command");
    json_t *jbg = json_object_get(args, "background");
    json_t *jto = json_object_get(args, "timeout");
    json_t *jwd = json_object_get(args, "workdir");
    json_t *jpty = json_object_get(args, "pty");
    json_t *jnotify = json_object_get(args, "notify");

    if (!jcmd) return sw_tool_error(NULL, "Missing required argument \"command\" (the shell command to run).");
    if (!json_is_string(jcmd))
        return sw_tool_error(NULL, "Invalid \"command\": expected a string.");
    const char *command = json_string_value(jcmd);
    if (strlen(command) != json_string_length(jcmd))
        return sw_tool_error(NULL, "Invalid \"command\": it contains a NUL character.");
    if (command[strspn(command, " \t\r\n")] == '\0')
        return sw_tool_error(NULL, "Invalid \"command\": it is empty.");
    const char *bool_names[] = {"background", "pty", "notify"};
    json_t *bools[] = {jbg, jpty, jnotify};
    for (int i = 0; i < 3; i++)
        if (bools[i] && !json_is_boolean(bools[i]) && !json_is_null(bools[i]))
            return sw_tool_error(NULL, "Invalid \"%s\": expected true or false.", bool_names[i]);
    bool background = json_is_true(jbg);
    if (json_is_true(jpty) && !background)
        return sw_tool_error(NULL, "\"pty\": true needs \"background\": true.");
    if (json_is_true(jnotify) && !background)
        return sw_tool_error(NULL, "\"notify\": true needs \"background\": true.");
    long timeout = cfg->timeout_s;
    if (jto && !json_is_null(jto)) {
        if (!json_is_integer(jto) || json_integer_value(jto) < 1)
            return sw_tool_error(NULL, "Invalid \"timeout\": expected a whole number of seconds, at least 1.");
        if (json_integer_value(jto) > cfg->max_fg_timeout_s && !background)
            return sw_tool_error(NULL, "A foreground \"timeout\" of %lld s is over the maximum of "
                                 "%ld s. Use \"background\": true for long-running commands.",
                                 (long long)json_integer_value(jto), cfg->max_fg_timeout_s);
        timeout = (long)json_integer_value(jto);
    }
    const char *workdir = NULL;
    if (jwd && !json_is_null(jwd)) {
        if (!json_is_string(jwd))
            return sw_tool_error(NULL, "Invalid \"workdir\": expected a string.");
        workdir = json_string_value(jwd);
        if ((workdir[0] != '/' && workdir[0] != '~') || bad_path_chars(workdir) ||
            strlen(workdir) != json_string_length(jwd))
            return sw_tool_error(NULL, "Invalid \"workdir\": expected an absolute path without "
                                 "control characters, got \"%s\".", workdir);
    }
    if (!task_of(args) || !r->tool_env)
        return sw_tool_error(NULL, "Invalid \"task_id\": expected a non-empty string.");
    const char *guide = background ? NULL : guidance(command);
    if (guide) return sw_tool_error(NULL, "%s", guide);
    if (!sudo_password && sw_sudo_reads_stdin(command))
        return sw_tool_error("blocked", "Refused: `sudo -S` reads a password from stdin, and no "
                             "SUDO_PASSWORD is configured, so this could only guess one. Ask the "
                             "user to run it, or to configure SUDO_PASSWORD for shellwire.");
    json_t *refusal = guard(command, sw_env_ops(r->tool_env), &r->cancel);
    if (refusal) return refusal;

    int st = 0;
    char err[512] = "";
    if (sw_cancel_fired(&r->cancel)) return sw_tool_error(NULL, "Cancelled before it started.");
    sw_env *env = r->tool_env;
    if (sw_env_acquire(env, r->tool_turn, &r->cancel, &st, err, sizeof err) < 0) {
        if (st == SW_BE_DEGRADED)
            return degraded(err, "The backend could not be reached; this is not a problem with "
                                 "the command. Check that it is running and reachable, then "
                                 "send the same call again.");
        return sw_tool_error("error", "Could not start the environment: %s", err);
    }
    if (sw_cancel_fired(&r->cancel)) {
        /* Cancelled while waiting for its turn: the command never starts. */
        sw_env_release(env);
        return sw_tool_error(NULL, "Cancelled before it started.");
    }
    char *session_cwd = sw_env_cwd(env);
    /* With SUDO_PASSWORD, each sudo reads one password line from the command's stdin. */
    int nsudo = 0;
    char *sudo_cmd = sudo_password && !json_is_true(jpty) ? sw_sudo_rewrite(command, &nsudo) : NULL;
    char *sudo_stdin = NULL;
    if (sudo_cmd) {
        size_t pl = strlen(sudo_password);
        sudo_stdin = sw_xmalloc((pl + 1) * (size_t)nsudo + 1);
        for (int i = 0; i < nsudo; i++) {
            memcpy(sudo_stdin + (pl + 1) * (size_t)i, sudo_password, pl);
            sudo_stdin[(pl + 1) * (size_t)i + pl] = '\n';
        }
        sudo_stdin[(pl + 1) * (size_t)nsudo - 1] = '\0';   /* the here-string adds the last newline */
    }
    if (background) {
        /* Started in the session's state; it never changes that state. */
        json_t *res = sw_reg_start(env, task_of(args), command, sudo_cmd ? sudo_cmd : command,
                                   sudo_stdin, workdir ? workdir : session_cwd,
                                   json_is_true(jpty), json_is_true(jnotify), err, sizeof err);
        free(session_cwd);
        free(sudo_cmd);
        if (sudo_stdin) {
            explicit_bzero(sudo_stdin, strlen(sudo_stdin));
            free(sudo_stdin);
        }
        sw_env_release(env);
        return res ? res : sw_tool_error(NULL, "Could not start the background process: %s", err);
    }
    sw_out_opts oo = {
        .limit_chars = (size_t)cfg->max_output_chars, .marker_id = sw_env_marker(env),
        .spill_dir = spill_dir,
    };
    call_ctx cc = {.req = r, .out = sw_out_new(&oo)};
    if (!cc.out) {
        sw_env_release(env);
        free(session_cwd);
        return sw_tool_error(NULL, "Out of memory while preparing the output buffer.");
    }
    sw_run_req rq = {
        .command = sudo_cmd ? sudo_cmd : command, .stdin_data = sudo_stdin,
        .cwd = workdir ? workdir : session_cwd, .publish_state = true,
        .timeout_ms = (int)(timeout * 1000), .cancel = &r->cancel,
        .sink = {.ctx = &cc, .data = on_data, .tick = on_tick},
    };
    sw_run_res rs = {0};
    int64_t t0 = sw_now_ms();
    int rc = sw_env_ops(env)->run(sw_env_backend(env), &rq, &rs);
    int64_t dt = sw_now_ms() - t0;
    free(sudo_cmd);
    if (sudo_stdin) {
        explicit_bzero(sudo_stdin, strlen(sudo_stdin));
        free(sudo_stdin);
    }
    sw_out_result o;
    sw_out_finish(cc.out, &o);
    sw_out_free(cc.out);
    size_t rlen;
    char *red = sw_redact(o.text, o.text_len, &rlen);
    if (red) {
        free(o.text);
        o.text = red;
        o.text_len = rlen;
    }
    if (o.full_output_path) sw_redact_file(o.full_output_path);
    if (sudo_password && *sudo_password) {
        /* Whatever echoed the password back, it does not reach the model. */
        size_t pl = strlen(sudo_password), w = 0;
        for (size_t i = 0; i < o.text_len;) {
            if (i + pl <= o.text_len && !memcmp(o.text + i, sudo_password, pl)) {
                memcpy(o.text + w, "***", 3 <= pl ? 3 : pl);
                w += 3 <= pl ? 3 : pl;
                i += pl;
            } else {
                o.text[w++] = o.text[i++];
            }
        }
        o.text[w] = '\0';
        o.text_len = w;
    }

    if (o.cwd && !workdir && rc == SW_BE_OK && strcmp(o.cwd, session_cwd) != 0)
        sw_env_set_cwd(env, o.cwd);
    sw_env_end_turn(env, r->tool_turn);
    *turn_ended = true;

    json_t *res;
    if (rc == SW_BE_DEGRADED) {
        res = degraded(rs.error, "The backend stopped answering; this is not a problem with the "
                                 "command. Send the same call again once the backend is reachable.");
    } else if (rc < 0) {
        res = sw_tool_error(NULL, "Could not run the command: %s%s%s", rs.error,
                            o.text_len ? ". It said: " : "", o.text_len ? o.text : "");
    } else {
        char *text = o.text;
        if (rs.timed_out || rs.cancelled) {
            char note[64];
            if (rs.timed_out) snprintf(note, sizeof note, "[Command timed out after %lds]", timeout);
            else snprintf(note, sizeof note, "[Command interrupted]");
            text = sw_printf("%s%s%s", o.text, o.text_len ? "\n" : "", note);
        }
        res = json_pack("{s:s%, s:i, s:n}", "output", text,
                        text == o.text ? o.text_len : strlen(text), "exit_code", rs.exit_code,
                        "error");
        if (text != o.text) free(text);
        if (o.cwd && !workdir && strcmp(o.cwd, session_cwd) != 0)
            json_object_set_new(res, "cwd", json_string(o.cwd));
        char buf[256];
        const char *meaning = rs.timed_out || rs.cancelled ? NULL
            : sw_out_exit_code_meaning(command, rs.exit_code, buf, sizeof buf);
        if (meaning) json_object_set_new(res, "exit_code_meaning", json_string(meaning));
        if (o.truncated) {
            json_object_set_new(res, "output_total_chars", json_integer((json_int_t)o.total_chars));
            if (o.full_output_path) {
                json_object_set_new(res, "full_output_path", json_string(o.full_output_path));
                char *note = sw_printf(
                    "The output had %zu characters, more than the %ld shown, so the middle was "
                    "cut. The whole output is saved in %s: read or search that file instead of "
                    "running the command again.", o.total_chars, cfg->max_output_chars,
                    o.full_output_path);
                json_object_set_new(res, "truncation_note", json_string(note));
                free(note);
            } else {
                json_object_set_new(res, "truncation_note", json_string(
                    "The output was longer than the limit, so the middle was cut (it could not "
                    "be saved to a file). Narrow the command's output, e.g. with grep, head or tail."));
            }
        }
        if (rs.recreated)
            json_object_set_new(res, "environment_recreated", json_string(
                "The environment had disappeared and was created again before this command "
                "ran; earlier state (files outside persisted paths, variables, background "
                "processes) may be gone."));
        json_object_set_new(res, "duration_ms", json_integer(dt));
    }
    sw_out_result_free(&o);
    free(session_cwd);
    if (!res) res = sw_tool_error(NULL, "internal error: the result could not be encoded");
    /* Warm the environment up for the next call once the answer is out. */
    r->after_reply = release_env;
    r->after_ctx = env;
    return res;
}
