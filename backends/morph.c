/* backends/morph.c — the morph transport: one Morph Cloud instance per environment,
 * started from TERMINAL_MORPH_SNAPSHOT and driven through the Morph REST API.
 *
 * connect  POST /instance?snapshot_id=<snapshot> (the task id in the metadata), then polls
 *          GET /instance/{id} until the status is `ready` (`error` fails at once; `paused`
 *          is resumed). A persistent environment (TERMINAL_CONTAINER_PERSISTENT=true)
 *          reuses an instance of the same snapshot whose metadata names its task.
 * exec     POST /instance/{id}/exec with the argv ["bash", "-c", wrapper, "bash", script].
 *          The answer holds all output at once (stdout, then stderr — the scripts merge
 *          their streams) and only comes once every holder of the output pipe is gone,
 *          which a `sleep 300 &` left by a command would delay; the wrapper takes care of
 *          that and of interruptions (below). The API has no deadline of its own, so the
 *          argv runs under `timeout -k 1 <ours + 10 s>` as a backstop for a lost client.
 *          404 → SW_TR_GONE.
 * close    DELETE /instance/{id} (stops it), or POST /instance/{id}/pause when persistent.
 *
 * The wrapper. The script runs in a subshell of the wrapper's bash (a fork, no exec; `$$`
 * stays the wrapper's pid, so killing that tree kills the command) with its output going
 * to a private file, /tmp/.shellwire-exec-<hex>. The wrapper waits for the subshell only,
 * then prints the file, removing it in the background, and exits with the subshell's
 * status: leftover background children hold the file, not the answer. At our deadline or
 * a cancellation the request is abandoned and a second, short exec prints the file so
 * far: the remote layer gets the partial output, including the pid line it needs to kill
 * the command's tree.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/http.h"
#include "backends/remote.h"
#include "server/config.h"
#include "server/util.h"

#define DEFAULT_BASE_URL "https://cloud.morph.so/api"
#define TOKEN_VAR "MORPH_API_KEY"
#define META_KEY "shellwire_task_id"
#define BACKSTOP_S 10                /* the remote `timeout`, beyond our deadline */
#define KILL_AFTER "1"               /* seconds between timeout's TERM and KILL */
#define COLLECT_TIMEOUT_MS 5000
#define NO_DEADLINE_MS (24 * 3600 * 1000)
#define CLOSE_TIMEOUT_MS 1500
#define PROBE_BUDGET_MS 5000
#define POLL_FIRST_MS 100
#define POLL_MAX_MS 1000


struct sw_transport {
    sw_http *api;
    char *path;                 /* "/instance/<id>" */
    char *exec_path;            /* "/instance/<id>/exec" */
    bool persistent;
};

/* ------------------------------------------------------------------ API helpers */

static int api(sw_transport *t, const char *method, const char *path, json_t *body,
               const char *idem, int timeout_ms, int budget_ms, sw_http_res *r)
{
    sw_http_req req = {.method = method, .url = path, .body = body, .idempotency_key = idem,
                       .timeout_ms = timeout_ms, .retry_budget_ms = budget_ms};
    return sw_http_do(t->api, &req, r);
}

static void take_instance(sw_transport *t, const char *id)
{
    char *eid = sw_http_escape(id);
    t->path = sw_printf("/instance/%s", eid);
    t->exec_path = sw_printf("/instance/%s/exec", eid);
    free(eid);
}

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* ------------------------------------------------------------------ connect */

static int get_status(sw_transport *t, char *status, size_t n, char *err, size_t errlen)
{
    sw_http_res r;
    int rc = api(t, "GET", t->path, NULL, NULL, 0, PROBE_BUDGET_MS, &r);
    const char *s = json_string_value(json_object_get(r.json, "status"));
    int st = SW_TR_OK;
    if (rc < 0 || r.status != 200) st = sw_http_failure(rc, &r, err, errlen);
    else if (!s) st = sw_http_malformed("the Morph API", &r, "GET /instance", err, errlen);
    else snprintf(status, n, "%s", s);
    sw_http_res_free(&r);
    return st;
}

static int resume(sw_transport *t, char *err, size_t errlen)
{
    char *p = sw_printf("%s/resume", t->path);
    sw_http_res r;
    int rc = api(t, "POST", p, NULL, NULL, 0, PROBE_BUDGET_MS, &r);
    free(p);
    int st = (rc < 0 || r.status >= 300) ? sw_http_failure(rc, &r, err, errlen) : SW_TR_OK;
    sw_http_res_free(&r);
    return st;
}

/* Polls the instance until it is ready (resuming it once if paused), failed, vanished,
 * or the deadline passes. */
static int wait_ready(sw_transport *t, int64_t deadline, char *err, size_t errlen)
{
    bool resumed = false;
    int interval = POLL_FIRST_MS;
    for (;;) {
        char status[64];
        int st = get_status(t, status, sizeof status, err, errlen);
        if (st != SW_TR_OK) return st;
        if (!strcmp(status, "ready")) return SW_TR_OK;
        if (!strcmp(status, "error")) {
            snprintf(err, errlen, "the Morph instance failed to start (status: error)");
            return SW_TR_ERROR;
        }
        if (sw_now_ms() >= deadline) {
            snprintf(err, errlen, "the Morph instance did not become ready in time (status: %s)",
                     status);
            return SW_TR_DEGRADED;
        }
        if (!strcmp(status, "paused") && !resumed) {
            if ((st = resume(t, err, errlen)) != SW_TR_OK) return st;
            resumed = true;
            continue;
        }
        nap(interval);
        interval = interval * 3 / 2 > POLL_MAX_MS ? POLL_MAX_MS : interval * 3 / 2;
    }
}

static int start_instance(sw_transport *t, const sw_open_opts *o, char *err, size_t errlen)
{
    char *snap = sw_http_escape(o->config->morph_snapshot);
    char *p = sw_printf("/instance?snapshot_id=%s", snap);
    free(snap);
    json_t *body = json_pack("{s:{s:s}}", "metadata", META_KEY, o->task_id ? o->task_id : "");
    char key[33];
    sw_random_hex(key, 16);
    sw_http_res r;
    int rc = api(t, "POST", p, body, key, 0, 0, &r);
    free(p);
    json_decref(body);
    const char *id = json_string_value(json_object_get(r.json, "id"));
    int st = SW_TR_OK;
    if (rc < 0 || r.status >= 300) st = sw_http_failure(rc, &r, err, errlen);
    else if (!id || !*id) st = sw_http_malformed("the Morph API", &r, "POST /instance", err, errlen);
    else take_instance(t, id);
    if (st == SW_TR_GONE) st = SW_TR_ERROR;       /* 404 here: an unknown snapshot */
    sw_http_res_free(&r);
    return st;
}

/* A listed instance this persistent environment can use again. */
static bool reusable(const json_t *inst, const char *snapshot)
{
    const char *status = json_string_value(json_object_get(inst, "status"));
    const char *snap = json_string_value(json_object_get(json_object_get(inst, "refs"),
                                                         "snapshot_id"));
    return status && snap && !strcmp(snap, snapshot) &&
           (!strcmp(status, "ready") || !strcmp(status, "paused") || !strcmp(status, "pending"));
}

/* Persistent: the instance whose metadata names this task, if any, else a new one. */
static int find_or_start(sw_transport *t, const sw_open_opts *o, char *err, size_t errlen)
{
    char *task = sw_http_escape(o->task_id ? o->task_id : "");
    char *p = sw_printf("/instance?metadata%%5B" META_KEY "%%5D=%s", task);
    free(task);
    sw_http_res r;
    int rc = api(t, "GET", p, NULL, NULL, 0, 0, &r);
    free(p);
    if (rc < 0 || r.status != 200) {
        int st = sw_http_failure(rc, &r, err, errlen);
        sw_http_res_free(&r);
        return st == SW_TR_GONE ? SW_TR_ERROR : st;
    }
    json_t *data = json_object_get(r.json, "data");
    if (!json_is_array(data)) {
        int st = sw_http_malformed("the Morph API", &r, "GET /instance", err, errlen);
        sw_http_res_free(&r);
        return st;
    }
    size_t i;
    json_t *inst;
    const char *id = NULL;
    json_array_foreach(data, i, inst) {
        if (!id && reusable(inst, o->config->morph_snapshot))
            id = json_string_value(json_object_get(inst, "id"));
    }
    if (id) take_instance(t, id);
    sw_http_res_free(&r);
    return id ? SW_TR_OK : start_instance(t, o, err, errlen);
}

static void release(sw_transport *t)
{
    if (t->path) {
        char *p = t->persistent ? sw_printf("%s/pause", t->path) : sw_strdup(t->path);
        sw_http_res r;
        api(t, t->persistent ? "POST" : "DELETE", p, NULL, NULL, CLOSE_TIMEOUT_MS,
            CLOSE_TIMEOUT_MS, &r);
        sw_http_res_free(&r);
        free(p);
    }
    sw_http_free(t->api);
    free(t->path);
    free(t->exec_path);
    free(t);
}

static int check_config(const sw_config *c, char *err, size_t errlen)
{
    if (!c || !c->morph_api_key || !*c->morph_api_key) {
        snprintf(err, errlen, "the morph backend needs an API key: set " TOKEN_VAR);
        return SW_TR_ERROR;
    }
    if (!c->morph_snapshot || !*c->morph_snapshot) {
        snprintf(err, errlen, "the morph backend needs a snapshot to start instances from: "
                              "set TERMINAL_MORPH_SNAPSHOT");
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
    const char *url = c->morph_base_url && *c->morph_base_url ? c->morph_base_url
                                                              : DEFAULT_BASE_URL;
    t->api = sw_http_new(url, c->morph_api_key, "the Morph API", TOKEN_VAR);
    t->persistent = c->container_persistent && !strcmp(c->container_persistent, "true");
    int64_t deadline = sw_now_ms() + (o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000);
    st = t->persistent ? find_or_start(t, o, err, errlen) : start_instance(t, o, err, errlen);
    if (st == SW_TR_OK) st = wait_ready(t, deadline, err, errlen);
    if (st == SW_TR_GONE) st = SW_TR_DEGRADED;
    if (st != SW_TR_OK) {
        release(t);                               /* stops what was started */
        return st;
    }
    *out = t;
    return SW_TR_OK;
}

/* ------------------------------------------------------------------ exec */

/* The argv: bash -c SCRIPT [bash ARG], under `timeout` when there is a deadline. */
static json_t *exec_body(const char *script, const char *arg, int timeout_ms)
{
    json_t *argv = json_array();
    if (timeout_ms > 0) {
        char secs[32];
        snprintf(secs, sizeof secs, "%d", (timeout_ms + 999) / 1000 + BACKSTOP_S);
        json_array_append_new(argv, json_string("timeout"));
        json_array_append_new(argv, json_string("-k"));
        json_array_append_new(argv, json_string(KILL_AFTER));
        json_array_append_new(argv, json_string(secs));
    }
    json_array_append_new(argv, json_string("bash"));
    json_array_append_new(argv, json_string("-c"));
    json_array_append_new(argv, json_string(script));
    if (arg) {
        json_array_append_new(argv, json_string("bash"));
        json_array_append_new(argv, json_string(arg));
    }
    return json_pack("{s:o}", "command", argv);
}

static int execute(sw_transport *t, const char *script, const char *arg, int timeout_ms,
                   const sw_exec_req *er, sw_http_res *r)
{
    json_t *body = exec_body(script, arg, timeout_ms);
    sw_http_req hr = {.method = "POST", .url = t->exec_path, .body = body,
                      .timeout_ms = timeout_ms > 0 ? timeout_ms : NO_DEADLINE_MS,
                      .cancel = er ? er->cancel : NULL, .tick = er ? er->tick : NULL,
                      .tick_ctx = er ? er->ctx : NULL};
    int rc = sw_http_do(t->api, &hr, r);
    json_decref(body);
    return rc;
}

/* A 200 answer: stdout then stderr to req->out in one piece; the status to *exit_code. */
static int deliver(const sw_http_res *r, const sw_exec_req *req, int *exit_code, char *err,
                   size_t errlen)
{
    json_t *code = json_object_get(r->json, "exit_code");
    json_t *so = json_object_get(r->json, "stdout");
    json_t *se = json_object_get(r->json, "stderr");
    if (!json_is_integer(code) || (so && !json_is_string(so)) || (se && !json_is_string(se)))
        return sw_http_malformed("the Morph API", r, "exec", err, errlen);
    size_t n1 = so ? json_string_length(so) : 0, n2 = se ? json_string_length(se) : 0;
    if (n1 + n2) {
        char *all = sw_xmalloc(n1 + n2);
        if (n1) memcpy(all, json_string_value(so), n1);
        if (n2) memcpy(all + n1, json_string_value(se), n2);
        int stop = req->out(req->ctx, all, n1 + n2);
        free(all);
        if (stop) return SW_TR_INTERRUPTED;
    }
    *exit_code = (int)json_integer_value(code);
    return SW_TR_OK;
}

/* An interrupted exec: hands over what the script printed so far (from its output file). */
static void collect(sw_transport *t, const sw_exec_req *req, const char *file)
{
    char *script = sw_printf(SW_SYNC_COLLECT, file);
    sw_http_res r;
    int ec;
    char err[256];
    if (execute(t, script, NULL, COLLECT_TIMEOUT_MS, NULL, &r) == 0 && r.status == 200)
        deliver(&r, req, &ec, err, sizeof err);
    sw_http_res_free(&r);
    free(script);
}

static int tr_exec(sw_transport *t, const sw_exec_req *req, int *exit_code, char *err,
                   size_t errlen)
{
    char hex[33];
    sw_random_hex(hex, 16);
    char *file = sw_printf(SW_SYNC_OUTPUT_FILE, hex);
    char *wrapper = sw_printf(SW_SYNC_WRAPPER, file);
    sw_http_res r;
    int rc = execute(t, wrapper, req->script, req->timeout_ms, req, &r);
    int st;
    if (rc == 0 && r.status == 200) {
        st = deliver(&r, req, exit_code, err, errlen);
    } else if (r.cancelled || r.timed_out) {
        collect(t, req, file);
        st = SW_TR_INTERRUPTED;
    } else {
        st = sw_http_failure(rc, &r, err, errlen);
    }
    sw_http_res_free(&r);
    free(wrapper);
    free(file);
    return st;
}

static void tr_close(sw_transport *t) { release(t); }

static const sw_transport_ops transport = {
    .name = "morph", .connect = tr_connect, .exec = tr_exec, .close = tr_close,
};

static int morph_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    return sw_remote_open(&transport, o, out, err, errlen);
}

const sw_backend_ops sw_morph_ops = SW_REMOTE_OPS("morph", true, morph_open);
