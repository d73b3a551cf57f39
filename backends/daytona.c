/* backends/daytona.c — the daytona transport: one Daytona sandbox per environment, driven
 * through the Daytona REST API (control plane) and the sandbox's toolbox API (commands).
 *
 * connect  POST /sandbox (from TERMINAL_DAYTONA_SNAPSHOT, or from TERMINAL_DAYTONA_IMAGE as
 *          a one-line Dockerfile in buildInfo, or the account's default), then polls
 *          GET /sandbox/{id} until the state is `started` (fails at once on `error` or
 *          `build_failed`, quoting errorReason). A persistent environment
 *          (TERMINAL_CONTAINER_PERSISTENT=true) is named after its task and reused: an
 *          existing sandbox of that name is started instead of creating one.
 * exec     POST {toolboxProxyUrl}/{id}/process/execute with `bash -c '<wrapper>' bash
 *          '<script>'` (older daemons split the command into words, newer ones feed it to
 *          a shell: the quoted form means the same to both). The answer holds all output
 *          at once and only comes once every holder of the daemon's output pipe is gone,
 *          which a `sleep 300 &` left by a command would delay; the wrapper takes care of
 *          that and of interruptions (below). The daemon's own `timeout` is only a
 *          backstop (ours + 10 s); its 408 answer counts as an interruption too. Any other
 *          unexpected answer triggers a look at the sandbox: gone (404, destroyed) →
 *          SW_TR_GONE; stopped or archived (auto-stop) → started again and the script
 *          re-run once.
 * close    DELETE /sandbox/{id}, or POST /sandbox/{id}/stop for a persistent one.
 *
 * The wrapper. The script runs in a subshell of the wrapper's bash (a fork, no exec; `$$`
 * stays the wrapper's pid, so killing that tree kills the command) with its output going
 * to a private file, /tmp/.shellwire-exec-<hex>. The wrapper waits for the subshell only,
 * then prints the file, removing it in the background, and exits with the subshell's
 * status: leftover background children hold the file, not the answer. At our deadline or
 * a cancellation the request is abandoned and a second, short exec prints the file so
 * far: the remote layer gets the partial output, including the pid line it needs to kill
 * the command's tree.
 *
 * Ephemeral sandboxes are created with autoDeleteInterval 0 (deleted as soon as they
 * stop), so one left behind by a crashed server disappears at Daytona's auto-stop. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/http.h"
#include "backends/remote.h"
#include "server/config.h"
#include "server/util.h"

#define DEFAULT_API_URL "https://app.daytona.io/api"
#define TOKEN_VAR "DAYTONA_API_KEY"
#define LABEL_KEY "shellwire_task_id"
#define BACKSTOP_S 10                /* the daemon's own deadline, beyond ours */
#define COLLECT_TIMEOUT_MS 5000
#define NO_DEADLINE_MS (24 * 3600 * 1000)
#define CLOSE_TIMEOUT_MS 1500
#define PROBE_BUDGET_MS 5000
#define POLL_FIRST_MS 100
#define POLL_MAX_MS 1000


struct sw_transport {
    sw_http *api;
    char *path;                 /* "/sandbox/<id>" */
    char *exec_url;             /* "<toolboxProxyUrl>/<id>/process/execute" */
    bool persistent;
    int start_timeout_ms;
    pthread_mutex_t mu;         /* one restart at a time */
};

/* ------------------------------------------------------------------ API helpers */

static int api(sw_transport *t, const char *method, const char *path, json_t *body,
               const char *idem, int timeout_ms, int budget_ms, sw_http_res *r)
{
    sw_http_req req = {.method = method, .url = path, .body = body, .idempotency_key = idem,
                       .timeout_ms = timeout_ms, .retry_budget_ms = budget_ms};
    return sw_http_do(t->api, &req, r);
}

/* How many bytes of s (valid UTF-8) fit in max without cutting a character. */
static int head_len(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) return (int)n;
    for (n = max; n && ((unsigned char)s[n] & 0xC0) == 0x80; n--) {}
    return (int)n;
}

/* Takes id and toolboxProxyUrl from the Sandbox object answering `what`. */
static int take_sandbox(sw_transport *t, const sw_http_res *r, const char *what, char *err,
                        size_t errlen)
{
    const char *id = json_string_value(json_object_get(r->json, "id"));
    const char *tb = json_string_value(json_object_get(r->json, "toolboxProxyUrl"));
    if (!id || !*id || !tb || !*tb) return sw_http_malformed("the Daytona API", r, what, err, errlen);
    char *eid = sw_http_escape(id);
    size_t n = strlen(tb);
    while (n && tb[n - 1] == '/') n--;
    free(t->path);
    free(t->exec_url);
    t->path = sw_printf("/sandbox/%s", eid);
    t->exec_url = sw_printf("%.*s/%s/process/execute", (int)n, tb, eid);
    free(eid);
    return SW_TR_OK;
}

/* ------------------------------------------------------------------ states */

enum { ST_READY, ST_WAIT, ST_START, ST_FAILED, ST_GONE };

static int classify(const char *state)
{
    static const char *const start[] = {"stopped", "archived", "paused"};
    if (!strcmp(state, "started")) return ST_READY;
    if (!strcmp(state, "error") || !strcmp(state, "build_failed")) return ST_FAILED;
    if (!strcmp(state, "destroyed") || !strcmp(state, "destroying")) return ST_GONE;
    for (size_t i = 0; i < sizeof start / sizeof *start; i++)
        if (!strcmp(state, start[i])) return ST_START;
    return ST_WAIT;
}

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* GET the sandbox: its state and errorReason (empty when none). */
static int get_state(sw_transport *t, char *state, size_t sn, char *reason, size_t rn,
                     char *err, size_t errlen)
{
    sw_http_res r;
    int rc = api(t, "GET", t->path, NULL, NULL, 0, PROBE_BUDGET_MS, &r);
    int st = SW_TR_OK;
    const char *s = json_string_value(json_object_get(r.json, "state"));
    const char *why = json_string_value(json_object_get(r.json, "errorReason"));
    if (rc < 0 || r.status != 200) st = sw_http_failure(rc, &r, err, errlen);
    else if (!s) st = sw_http_malformed("the Daytona API", &r, "GET /sandbox", err, errlen);
    else {
        snprintf(state, sn, "%s", s);
        why = why ? why : "";
        snprintf(reason, rn, "%.*s", head_len(why, rn - 1), why);
    }
    sw_http_res_free(&r);
    return st;
}

static int start_sandbox(sw_transport *t, char *err, size_t errlen)
{
    char *p = sw_printf("%s/start", t->path);
    sw_http_res r;
    int rc = api(t, "POST", p, NULL, NULL, 0, PROBE_BUDGET_MS, &r);
    free(p);
    int st = (rc < 0 || r.status >= 300) ? sw_http_failure(rc, &r, err, errlen) : SW_TR_OK;
    sw_http_res_free(&r);
    return st;
}

/* Polls the sandbox until it is started (starting it once if it is stopped), it failed,
 * it vanished, or the deadline passes. *waited tells whether it was not started at first. */
static int wait_started(sw_transport *t, int64_t deadline, bool *waited, char *err,
                        size_t errlen)
{
    bool start_sent = false;
    int interval = POLL_FIRST_MS;
    *waited = false;
    for (;;) {
        char state[64], reason[300];
        int st = get_state(t, state, sizeof state, reason, sizeof reason, err, errlen);
        if (st != SW_TR_OK) return st;
        int kind = classify(state);
        if (kind == ST_READY) return SW_TR_OK;
        if (kind == ST_FAILED) {
            snprintf(err, errlen, "the Daytona sandbox failed to start (%s): %s", state,
                     *reason ? reason : "no reason given");
            return SW_TR_ERROR;
        }
        if (kind == ST_GONE) {
            snprintf(err, errlen, "the Daytona sandbox is %s", state);
            return SW_TR_GONE;
        }
        *waited = true;
        if (sw_now_ms() >= deadline) {
            snprintf(err, errlen, "the Daytona sandbox did not start in time (state: %s)", state);
            return SW_TR_DEGRADED;
        }
        if (kind == ST_START && !start_sent) {
            if ((st = start_sandbox(t, err, errlen)) != SW_TR_OK) return st;
            start_sent = true;
            continue;
        }
        nap(interval);
        interval = interval * 3 / 2 > POLL_MAX_MS ? POLL_MAX_MS : interval * 3 / 2;
    }
}

/* ------------------------------------------------------------------ connect */

/* "shellwire-<task>" with everything but [a-z0-9-] replaced, for persistent sandboxes. */
static char *sandbox_name(const char *task)
{
    char *name = sw_printf("shellwire-%.50s", task && *task ? task : "default");
    for (char *p = name; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
        else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) *p = '-';
    }
    return name;
}

static json_t *create_body(const sw_open_opts *o, const char *name)
{
    const sw_config *c = o->config;
    json_t *b = json_object();
    json_object_set_new(b, "labels", json_pack("{s:s}", LABEL_KEY, o->task_id ? o->task_id : ""));
    if (name) json_object_set_new(b, "name", json_string(name));
    else json_object_set_new(b, "autoDeleteInterval", json_integer(0));
    if (c->daytona_snapshot && *c->daytona_snapshot) {
        json_object_set_new(b, "snapshot", json_string(c->daytona_snapshot));
    } else if (c->daytona_image && *c->daytona_image) {
        char *df = sw_printf("FROM %s\n", c->daytona_image);
        json_object_set_new(b, "buildInfo", json_pack("{s:s}", "dockerfileContent", df));
        free(df);
    }
    return b;
}

static int create(sw_transport *t, const sw_open_opts *o, const char *name, char *err,
                  size_t errlen)
{
    json_t *body = create_body(o, name);
    char key[33];
    sw_random_hex(key, 16);
    sw_http_res r;
    int rc = api(t, "POST", "/sandbox", body, key, 0, 0, &r);
    json_decref(body);
    int st = (rc < 0 || r.status >= 300) ? sw_http_failure(rc, &r, err, errlen)
                                         : take_sandbox(t, &r, "POST /sandbox", err, errlen);
    if (st == SW_TR_GONE) st = SW_TR_ERROR;       /* 404 here: a wrong URL or snapshot */
    sw_http_res_free(&r);
    return st;
}

/* Persistent: the sandbox named after the task if it exists, else a new one. */
static int find_or_create(sw_transport *t, const sw_open_opts *o, char *err, size_t errlen)
{
    char *name = sandbox_name(o->task_id);
    char *en = sw_http_escape(name);
    char *p = sw_printf("/sandbox/%s", en);
    free(en);
    sw_http_res r;
    int rc = api(t, "GET", p, NULL, NULL, 0, 0, &r);
    free(p);
    int st;
    if (rc == 0 && r.status == 200) st = take_sandbox(t, &r, "GET /sandbox", err, errlen);
    else if (rc == 0 && r.status == 404) st = create(t, o, name, err, errlen);
    else st = sw_http_failure(rc, &r, err, errlen);
    sw_http_res_free(&r);
    free(name);
    return st;
}

static void release(sw_transport *t)
{
    if (t->path) {
        char *p = t->persistent ? sw_printf("%s/stop", t->path) : sw_strdup(t->path);
        sw_http_res r;
        api(t, t->persistent ? "POST" : "DELETE", p, NULL, NULL, CLOSE_TIMEOUT_MS,
            CLOSE_TIMEOUT_MS, &r);
        sw_http_res_free(&r);
        free(p);
    }
    sw_http_free(t->api);
    pthread_mutex_destroy(&t->mu);
    free(t->path);
    free(t->exec_url);
    free(t);
}

static int check_config(const sw_config *c, char *err, size_t errlen)
{
    if (!c || !c->daytona_api_key || !*c->daytona_api_key) {
        snprintf(err, errlen, "the daytona backend needs an API key: set " TOKEN_VAR);
        return SW_TR_ERROR;
    }
    if (c->daytona_image && *c->daytona_image && c->daytona_snapshot && *c->daytona_snapshot) {
        snprintf(err, errlen, "set either TERMINAL_DAYTONA_IMAGE or TERMINAL_DAYTONA_SNAPSHOT, "
                              "not both");
        return SW_TR_ERROR;
    }
    return SW_TR_OK;
}

static int tr_connect(const sw_open_opts *o, sw_transport **out, char *err, size_t errlen)
{
    const sw_config *c = o->config;
    int st = check_config(c, err, errlen);
    if (st != SW_TR_OK) return st;
    sw_transport *t = sw_xcalloc(1, sizeof *t);
    const char *url = c->daytona_api_url && *c->daytona_api_url ? c->daytona_api_url
                                                                : DEFAULT_API_URL;
    t->api = sw_http_new(url, c->daytona_api_key, "the Daytona API", TOKEN_VAR);
    t->persistent = c->container_persistent && !strcmp(c->container_persistent, "true");
    t->start_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000;
    pthread_mutex_init(&t->mu, NULL);
    int64_t deadline = sw_now_ms() + t->start_timeout_ms;
    st = t->persistent ? find_or_create(t, o, err, errlen) : create(t, o, NULL, err, errlen);
    bool waited;
    if (st == SW_TR_OK) st = wait_started(t, deadline, &waited, err, errlen);
    if (st == SW_TR_GONE) st = SW_TR_DEGRADED;
    if (st != SW_TR_OK) {
        release(t);                               /* deletes what was created */
        return st;
    }
    *out = t;
    return SW_TR_OK;
}

/* ------------------------------------------------------------------ exec */

/* POSTs `bash -c <script> bash <arg>` (arg optional) to process/execute. */
static int execute(sw_transport *t, const char *script, const char *arg, int timeout_ms,
                   const sw_exec_req *er, sw_http_res *r)
{
    char *qs = sw_shell_quote(script);
    char *qa = arg ? sw_shell_quote(arg) : NULL;
    char *command = qa ? sw_printf("bash -c %s bash %s", qs, qa) : sw_printf("bash -c %s", qs);
    free(qs);
    free(qa);
    json_t *body = json_pack("{s:s}", "command", command);
    free(command);
    int http_timeout = NO_DEADLINE_MS;
    if (timeout_ms > 0) {
        json_object_set_new(body, "timeout", json_integer((timeout_ms + 999) / 1000 + BACKSTOP_S));
        http_timeout = timeout_ms;
    }
    sw_http_req hr = {.method = "POST", .url = t->exec_url, .body = body,
                      .timeout_ms = http_timeout, .cancel = er ? er->cancel : NULL,
                      .tick = er ? er->tick : NULL, .tick_ctx = er ? er->ctx : NULL};
    int rc = sw_http_do(t->api, &hr, r);
    json_decref(body);
    return rc;
}

/* After an unexpected answer: the sandbox is gone (SW_TR_GONE), was stopped and is started
 * again (SW_TR_OK: run the script again), or is fine (the answer is the error). */
static int recover(sw_transport *t, int rc, const sw_http_res *bad, char *err, size_t errlen)
{
    pthread_mutex_lock(&t->mu);
    char why[512];
    bool waited;
    int st = wait_started(t, sw_now_ms() + t->start_timeout_ms, &waited, why, sizeof why);
    pthread_mutex_unlock(&t->mu);
    if (st == SW_TR_OK && !waited) {
        snprintf(err, errlen, "%s", bad->error);
        return rc < 0 ? SW_TR_DEGRADED : SW_TR_ERROR;
    }
    if (st != SW_TR_OK) snprintf(err, errlen, "%s", why);
    return st;
}

/* A 200 answer: output to req->out, the exit status to *exit_code. */
static int deliver(const sw_http_res *r, const sw_exec_req *req, int *exit_code, char *err,
                   size_t errlen)
{
    json_t *code = json_object_get(r->json, "exitCode");
    json_t *result = json_object_get(r->json, "result");
    if (!json_is_integer(code) || (result && !json_is_string(result)))
        return sw_http_malformed("the Daytona API", r, "process/execute", err, errlen);
    const char *text = result ? json_string_value(result) : "";
    size_t len = result ? json_string_length(result) : 0;
    if (json_integer_value(code) < 0) {
        snprintf(err, errlen, "the Daytona sandbox could not start the command: %.*s",
                 head_len(text, 300), text);
        return SW_TR_ERROR;
    }
    if (len && req->out(req->ctx, text, len)) return SW_TR_INTERRUPTED;
    *exit_code = (int)json_integer_value(code);
    return SW_TR_OK;
}

/* An interrupted exec: hands over what the script printed so far (from its output file). */
static void collect(sw_transport *t, const sw_exec_req *req, const char *file)
{
    char *script = sw_printf(SW_SYNC_COLLECT, file);
    sw_http_res r;
    int rc = execute(t, script, NULL, COLLECT_TIMEOUT_MS, NULL, &r);
    json_t *result = json_object_get(r.json, "result");
    if (rc == 0 && r.status == 200 && json_string_length(result))
        req->out(req->ctx, json_string_value(result), json_string_length(result));
    sw_http_res_free(&r);
    free(script);
}

static int tr_exec(sw_transport *t, const sw_exec_req *req, int *exit_code, char *err,
                   size_t errlen)
{
    char hex[33], *file, *wrapper;
    sw_random_hex(hex, 16);
    file = sw_printf(SW_SYNC_OUTPUT_FILE, hex);
    wrapper = sw_printf(SW_SYNC_WRAPPER, file);
    int st;
    for (int round = 0;; round++) {
        sw_http_res r;
        int rc = execute(t, wrapper, req->script, req->timeout_ms, req, &r);
        bool again = false;
        if (rc == 0 && r.status == 200) {
            st = deliver(&r, req, exit_code, err, errlen);
        } else if (r.cancelled || r.timed_out || (rc == 0 && r.status == 408)) {
            collect(t, req, file);
            st = SW_TR_INTERRUPTED;
        } else if (rc == 0 && (r.status == 401 || r.status == 403)) {
            st = sw_http_failure(rc, &r, err, errlen);
        } else if (round == 0 && (rc == 0 || r.status >= 500)) {
            st = recover(t, rc, &r, err, errlen);
            again = st == SW_TR_OK;
        } else {
            st = sw_http_failure(rc, &r, err, errlen);
        }
        sw_http_res_free(&r);
        if (!again) break;
    }
    free(wrapper);
    free(file);
    return st;
}

static void tr_close(sw_transport *t) { release(t); }

static const sw_transport_ops transport = {
    .name = "daytona", .connect = tr_connect, .exec = tr_exec, .close = tr_close,
};

static int daytona_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    return sw_remote_open(&transport, o, out, err, errlen);
}

const sw_backend_ops sw_daytona_ops = SW_REMOTE_OPS("daytona", true, daytona_open);
