/* tests/fuzz/fuzz_rpc.c — the whole JSON-RPC/MCP dispatch, in process: framing, parsing,
 * validation, batches, the lifecycle, tools/list, tools/call routing with argument checks,
 * the guard, the sudo rewrite, the environment manager, the output pipeline and the
 * result envelope, over a fake backend that runs nothing.
 *
 * Input: what a client writes to stdin (one or more lines). Each input is served as a
 * fresh session (sw_mcp_reset_session) through sw_rpc_serve_fds, reading from a memfd and
 * writing to another; the call returns once every request in flight has answered.
 *
 * The fake backend never starts a process. Its "command output" is the command text
 * itself (then the sudo stdin it was given, so password masking is exercised), delivered
 * in small chunks, followed by the wrapper's cwd marker. Words in the command steer it:
 *   cd PATH      the marker reports PATH as the new working directory
 *   #exit=N      exit status N            #timeout / #cancel   timed out / cancelled
 *   #recreated   the sandbox was recreated
 *   #degraded / #error   the run fails (degraded / error) with the rest of the command
 *                as the reason
 * and a task_id containing "down" makes opening the environment fail.
 *
 * Invariants on the output:
 *   - every line is one JSON value (a JSON-RPC 2.0 object, or a non-empty array of them),
 *     valid UTF-8, and there is no empty line and no unterminated line;
 *   - every response has exactly one of result/error, and no error is -32603 (internal),
 *     nor a tool result whose error is the terminal tool's "internal error" fallback;
 *   - a tools/call result has content[0].text equal to structuredContent serialised, and
 *     isError exactly when structuredContent.error is a non-empty string;
 *   - unless the input cancels something, each request whose id can be echoed gets
 *     exactly one response with that id.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/backend.h"
#include "server/config.h"
#include "server/env.h"
#include "server/log.h"
#include "server/mcp.h"
#include "server/registry.h"
#include "server/rpc.h"
#include "server/tools.h"
#include "server/util.h"
#include "tests/fuzz/fuzz_util.h"

#define MAX_LINE 4096           /* SHELLWIRE_MAX_LINE_BYTES for the fuzzed server */

/* ---- the fake backend ------------------------------------------------------------- */

struct sw_backend {
    char marker[64];
};

static int fake_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    if (strstr(o->task_id, "down")) {
        snprintf(err, errlen, "the fake backend is down for task %s", o->task_id);
        return SW_BE_DEGRADED;
    }
    sw_backend *b = sw_xcalloc(1, sizeof *b);
    snprintf(b->marker, sizeof b->marker, "%s", o->marker_id);
    *out = b;
    return SW_BE_OK;
}

static void send_chunks(const sw_sink *s, const char *p, size_t n)
{
    while (n > 0) {
        size_t k = n < 7 ? n : 7;
        s->data(s->ctx, p, k);
        p += k;
        n -= k;
    }
}

static int fake_run(sw_backend *b, const sw_run_req *req, sw_run_res *res)
{
    const char *cmd = req->command;
    const char *word;
    if ((word = strstr(cmd, "#degraded"))) {
        snprintf(res->error, sizeof res->error, "fake transport failure: %s", word + 9);
        return SW_BE_DEGRADED;
    }
    if ((word = strstr(cmd, "#error"))) {
        send_chunks(&req->sink, cmd, (size_t)(word - cmd));
        snprintf(res->error, sizeof res->error, "fake backend error: %s", word + 6);
        return SW_BE_ERROR;
    }
    send_chunks(&req->sink, cmd, strlen(cmd));
    if (req->stdin_data) send_chunks(&req->sink, req->stdin_data, strlen(req->stdin_data));
    if (req->sink.tick) req->sink.tick(req->sink.ctx);
    const char *cwd = req->cwd;
    char *newcwd = NULL;
    if (!strncmp(cmd, "cd ", 3)) {
        newcwd = sw_strdup(cmd + 3);
        newcwd[strcspn(newcwd, ";&|\n")] = '\0';
        if (*newcwd) cwd = newcwd;
    }
    char *marker = sw_printf("\n__SHELLWIRE_CWD_%s__%s__SHELLWIRE_CWD_%s__\n", b->marker, cwd,
                             b->marker);
    send_chunks(&req->sink, marker, strlen(marker));
    free(marker);
    free(newcwd);
    if ((word = strstr(cmd, "#exit="))) res->exit_code = atoi(word + 6) & 255;
    res->timed_out = strstr(cmd, "#timeout") != NULL;
    res->cancelled = strstr(cmd, "#cancel") != NULL;
    res->recreated = strstr(cmd, "#recreated") != NULL;
    if (res->timed_out) res->exit_code = 124;
    return SW_BE_OK;
}

static void fake_close(sw_backend *b) { free(b); }

static const sw_backend_ops fake_ops = {
    .name = "fake", .sandboxed = false, .open = fake_open, .run = fake_run, .close = fake_close,
};

/* ---- set-up ------------------------------------------------------------------------ */

static sw_config cfg;
static int in_fd, out_fd;
static char *spill_dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char *state = fuzz_tmpdir("sw-fuzz-rpc");
    char *args[] = {"fuzz_rpc", "--state-dir", state, "--cwd", "/work", "--max-output-chars",
                    "300", "--max-line-bytes", "4096", "--workers", "4", "--order-wait", "1",
                    "--log-level", "off", "--approval", "ask", "--redact", "1", NULL};
    int nargs = (int)(sizeof args / sizeof *args) - 1;
    /* Only the flags above count: variables from the caller's environment are ignored. */
    static const char *vars[] = {"TERMINAL_ENV", "TERMINAL_TIMEOUT", "TERMINAL_MAX_FOREGROUND_TIMEOUT",
                                 "SHELLWIRE_APPROVAL_TIMEOUT", "SHELLWIRE_PASS_ENV", "TERMINAL_CWD"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) unsetenv(vars[i]);
    setenv("SUDO_PASSWORD", "fuzz-sudo-pw", 1);
    if (sw_config_load(&cfg, nargs, args) != SW_CONFIG_RUN) abort();
    cfg.approval_timeout_s = 0;     /* an approval question times out at once */
    sw_log_set_level(SW_LOG_OFF);
    if (sw_terminal_init(&cfg) < 0 || sw_mcp_init(&cfg) < 0) abort();
    char *runtime = sw_printf("%s/run", state);
    spill_dir = sw_printf("%s/output", state);
    sw_mkdir_p(runtime, 0700);
    sw_mkdir_p(spill_dir, 0700);
    static char *child_env[] = {"PATH=/usr/bin:/bin", NULL};
    if (sw_env_init(&cfg, &fake_ops, runtime, child_env) < 0) abort();
    if (sw_reg_init(&cfg, &fake_ops) < 0) abort();
    in_fd = memfd_create("fuzz-rpc-in", MFD_CLOEXEC);
    out_fd = memfd_create("fuzz-rpc-out", MFD_CLOEXEC);
    if (in_fd < 0 || out_fd < 0) abort();
    free(runtime);
    free(state);
    return 0;
}

/* ---- checking the output ------------------------------------------------------------ */

typedef struct idcount {
    json_t *ids;      /* array of ids seen */
} idcount;

static size_t count_id(json_t *ids, json_t *id)
{
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(ids, i, v) n += json_equal(v, id);
    return n;
}

static bool echoable(json_t *id) { return json_is_string(id) || json_is_number(id); }

/* Requests of the input whose id must come back, and whether anything gets cancelled. */
static void scan_input(const char *d, size_t n, json_t *want, bool *cancels)
{
    size_t start = 0;
    while (start < n) {
        const char *nl = memchr(d + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - d) : n, len = end - start;
        if (len > 0 && d[start + len - 1] == '\r') len--;
        json_t *msg = len <= MAX_LINE
            ? json_loadb(d + start, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL) : NULL;
        json_t *items = json_is_array(msg) ? msg : NULL;
        for (size_t i = 0; i < (items ? json_array_size(items) : 1); i++) {
            json_t *m = items ? json_array_get(items, i) : msg;
            if (!json_is_object(m)) continue;
            json_t *method = json_object_get(m, "method");
            if (json_is_string(method) && !strcmp(json_string_value(method), "notifications/cancelled"))
                *cancels = true;
            if (items) continue;         /* batch answers depend on the negotiated version */
            json_t *id = json_object_get(m, "id");
            json_t *ver = json_object_get(m, "jsonrpc");
            bool ok_ver = json_is_string(ver) && !strcmp(json_string_value(ver), "2.0");
            if (!echoable(id)) continue;
            if (ok_ver && !method && (json_object_get(m, "result") || json_object_get(m, "error")))
                continue;                /* a response from the client */
            json_array_append(want, id);
        }
        json_decref(msg);
        start = end + 1;
    }
}

static void check_result(json_t *res)
{
    FUZZ_CHECK(json_is_object(res), "result is not an object");
    json_t *sc = json_object_get(res, "structuredContent");
    if (!sc) return;                    /* not a tools/call answer */
    json_t *content = json_object_get(res, "content");
    json_t *text = json_object_get(json_array_get(content, 0), "text");
    FUZZ_CHECK(json_is_string(text), "tools/call result without content text");
    json_t *parsed = json_loads(json_string_value(text), 0, NULL);
    FUZZ_CHECK(parsed && json_equal(parsed, sc), "content text is not structuredContent");
    json_decref(parsed);
    json_t *err = json_object_get(sc, "error");
    FUZZ_CHECK(err && (json_is_null(err) || json_is_string(err)), "envelope error is neither null nor a string");
    FUZZ_CHECK(!json_is_string(err) || strncmp(json_string_value(err), "internal error", 14),
               "tool result is an internal error: %s", json_string_value(err));
    bool want = json_is_string(err) && json_string_length(err) > 0;
    FUZZ_CHECK(json_is_boolean(json_object_get(res, "isError")) &&
                   json_is_true(json_object_get(res, "isError")) == want,
               "isError does not match error");
}

static void check_message(json_t *m, json_t *got_ids)
{
    FUZZ_CHECK(json_is_object(m), "a message that is not an object");
    json_t *ver = json_object_get(m, "jsonrpc");
    FUZZ_CHECK(json_is_string(ver) && !strcmp(json_string_value(ver), "2.0"), "jsonrpc is not 2.0");
    if (json_object_get(m, "method")) return;     /* a notification or a request of ours */
    FUZZ_CHECK(json_object_get(m, "id") != NULL, "a response without id");
    json_t *result = json_object_get(m, "result"), *error = json_object_get(m, "error");
    FUZZ_CHECK(!result != !error, "a response needs exactly one of result and error");
    if (error) {
        json_t *code = json_object_get(error, "code");
        FUZZ_CHECK(json_is_integer(code) && json_is_string(json_object_get(error, "message")),
                   "malformed error object");
        FUZZ_CHECK(json_integer_value(code) != SW_RPC_INTERNAL_ERROR, "internal error: %s",
                   json_string_value(json_object_get(error, "message")));
    } else {
        check_result(result);
    }
    if (got_ids) json_array_append(got_ids, json_object_get(m, "id"));
}

static void check_output(const char *out, size_t n, json_t *got_ids)
{
    FUZZ_CHECK(n == 0 || out[n - 1] == '\n', "output does not end with a newline");
    FUZZ_CHECK(fuzz_utf8_valid(out, n), "output is not valid UTF-8");
    size_t start = 0;
    while (start < n) {
        const char *nl = memchr(out + start, '\n', n - start);
        size_t len = (size_t)(nl - out) - start;
        FUZZ_CHECK(len > 0, "an empty output line");
        json_error_t e;
        json_t *m = json_loadb(out + start, len, JSON_DECODE_ANY, &e);
        FUZZ_CHECK(m != NULL, "an output line is not JSON: %s: %.*s", e.text, (int)(len < 300 ? len : 300),
                   out + start);
        if (json_is_array(m)) {
            FUZZ_CHECK(json_array_size(m) > 0, "an empty batch answer");
            size_t i;
            json_t *el;
            json_array_foreach(m, i, el) {
                check_message(el, NULL);
                FUZZ_CHECK(!json_object_get(el, "method"), "a notification inside a batch answer");
            }
        } else {
            check_message(m, got_ids);
        }
        json_decref(m);
        start += len + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(in_fd, 0) < 0 || ftruncate(out_fd, 0) < 0) abort();
    if (size && pwrite(in_fd, data, size, 0) != (ssize_t)size) abort();
    lseek(in_fd, 0, SEEK_SET);
    lseek(out_fd, 0, SEEK_SET);

    sw_mcp_reset_session();
    sw_rpc_serve_fds(&cfg, in_fd, out_fd);

    off_t olen = lseek(out_fd, 0, SEEK_END);
    char *out = malloc((size_t)olen + 1);
    if (olen > 0 && pread(out_fd, out, (size_t)olen, 0) != olen) abort();
    json_t *got = json_array(), *want = json_array();
    check_output(out, (size_t)olen, got);

    bool cancels = false;
    scan_input((const char *)data, size, want, &cancels);
    if (!cancels) {
        size_t i;
        json_t *id;
        json_array_foreach(want, i, id)
            FUZZ_CHECK(count_id(got, id) == count_id(want, id),
                       "request id answered %zu times, sent %zu times", count_id(got, id),
                       count_id(want, id));
    }
    json_decref(got);
    json_decref(want);
    free(out);
    fuzz_empty_dir(spill_dir);
    return 0;
}
