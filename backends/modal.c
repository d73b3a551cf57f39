/* backends/modal.c — the modal transport: sandboxes run by Modal and reached through the
 * tool gateway's HTTP API (docs/backends.md).
 *
 * The API has five calls: create a sandbox (POST /v1/sandboxes, with an x-idempotency-key,
 * so a create retried after a lost answer never makes a second sandbox), start an exec
 * under an id chosen here (POST .../execs), poll it (GET .../execs/<id>), cancel it
 * (POST .../execs/<id>/cancel) and terminate the sandbox (POST .../terminate).
 *
 * A script of the remote layer reaches bash through the exec's stdin (`stdinData`); the
 * exec's command line only reads stdin and evals what it read. So no script runs into the
 * kernel's limit on the length of one argument, and a sudo password inside a script never
 * shows in `ps` inside the sandbox.
 *
 * The gateway says how an exec is doing only when asked. Most scripts end within a few
 * milliseconds, so the first poll follows the start almost at once and the interval then
 * grows geometrically to the gateway's documented cadence of 250 ms. Every answer carries
 * the output so far (one merged string that only grows); the bytes beyond what was already
 * passed on go to req->out.
 *
 * The gateway's answers are read by the parse_* functions, which take parsed JSON and
 * nothing else.
 */
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/http.h"
#include "backends/remote.h"
#include "server/config.h"
#include "server/log.h"
#include "server/util.h"

#define PROVIDER "Modal tool gateway"
#define TOKEN_VAR "TOOL_GATEWAY_USER_TOKEN"
#define DEFAULT_ORIGIN "https://modal-gateway.nousresearch.com"
#define DEFAULT_IMAGE "nikolaik/python-nodejs:python3.11-nodejs20"

#define SANDBOX_LIFETIME_MS 3600000  /* timeoutMs of a sandbox; also an exec's limit when the
                                        caller sets none */
#define MIN_IDLE_MS 300000           /* the gateway reaps a sandbox idle this long */
#define CREATE_TIMEOUT_MS 60000
#define START_TIMEOUT_MS 10000
#define POLL_TIMEOUT_MS 5000
/* How long a call is retried (429, 5xx, no connection) before the gateway counts as
 * unreachable. Less when nothing is lost by giving up: before a command has started. */
#define CREATE_RETRY_MS 10000
#define START_RETRY_MS 10000
#define POLL_RETRY_MS 20000
#define CANCEL_TIMEOUT_MS 2000
#define TERMINATE_TIMEOUT_MS 1500    /* close must be quick: the server exits within 2 s */
#define EXEC_GRACE_MS 10000          /* the gateway's own limit on an exec trails ours */
#define FIRST_POLL_MS 2
#define MAX_POLL_MS 250
#define TICK_MS 1000

/* Reads the whole of stdin (the script) and runs it. The variable is unset before the
 * script's first command, so a command cannot print the script it is part of. */
static const char EXEC_COMMAND[] =
    "bash -c 'IFS= read -r -d \"\" __sw_s; eval \"unset __sw_s; $__sw_s\"'";

struct sw_transport {
    sw_http *http;
    char *origin;               /* the gateway's base URL, for messages */
    json_t *create;             /* the create request's body, sent again by recreate */
    bool persistent;
    int create_timeout_ms;
    pthread_mutex_t mu;
    char *sandbox;              /* the sandbox's id, escaped for URL paths (under mu) */
};

/* ---- small helpers ------------------------------------------------------------------- */

/* A random (version 4) UUID in its usual 36-character form. */
static void uuid4(char out[37])
{
    char hex[33];
    sw_random_hex(hex, 16);
    hex[12] = '4';
    hex[16] = "89ab"[hex[16] % 4];
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* Percent-encodes every byte of s but the URL path's unreserved ones. Caller frees. */
static char *path_escape(const char *s)
{
    static const char hexd[] = "0123456789ABCDEF";
    char *out = sw_xmalloc(strlen(s) * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hexd[*p >> 4];
            *o++ = hexd[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* MODAL_GATEWAY_URL without trailing slashes, or the public gateway. Caller frees. */
static char *gateway_origin(const char *configured)
{
    char *origin = sw_strdup(configured ? configured : DEFAULT_ORIGIN);
    size_t n = strlen(origin);
    while (n > 1 && origin[n - 1] == '/') origin[--n] = '\0';
    return origin;
}

static char *sandbox_id(sw_transport *t)
{
    pthread_mutex_lock(&t->mu);
    char *sid = sw_strdup(t->sandbox);
    pthread_mutex_unlock(&t->mu);
    return sid;
}

/* Fills err for an answer that is not a success and returns the transport status:
 * no answer, 429 and 5xx degrade; 401/403 name the token's variable; other statuses
 * >= 400 are errors, except 404 when the caller wants to look at it itself. The HTTP
 * layer's message (res->error) already names the gateway and the status. */
static int answer_status(int rc, const sw_http_res *res, const char *what, const char *origin,
                         bool pass_404, char *err, size_t n)
{
    const char *why = res->error[0] ? res->error : "no answer";
    if (rc < 0 || res->status >= 500 || res->status == 429) {
        snprintf(err, n, "could not %s through the " PROVIDER " at %s: %s", what, origin, why);
        return SW_TR_DEGRADED;
    }
    if (res->status == 401 || res->status == 403) {
        if (strstr(why, TOKEN_VAR)) snprintf(err, n, "%s", why);
        else snprintf(err, n, "%s (check " TOKEN_VAR ")", why);
        return SW_TR_ERROR;
    }
    if (res->status >= 400 && !(pass_404 && res->status == 404)) {
        snprintf(err, n, "could not %s: %s", what, why);
        return SW_TR_ERROR;
    }
    return SW_TR_OK;
}

/* ---- parsing the gateway's answers ------------------------------------------------- */

/* The sandbox id of a create answer ({"id": "..."}), escaped for URL paths; -1 when the
 * answer has none. */
static int parse_sandbox_id(const json_t *body, char **sid)
{
    const char *id = json_string_value(json_object_get(body, "id"));
    if (!id || !*id) return -1;
    *sid = path_escape(id);
    return 0;
}

typedef struct exec_state {
    const char *exec_id;        /* NULL when absent; borrowed from the answer */
    const char *output;         /* the output so far; NULL when absent */
    size_t outlen;
    bool finished;              /* a terminal status: completed, failed, cancelled, timeout */
    int exit_code;              /* returncode, 1 when absent (as the gateway's clients do) */
} exec_state;

static bool terminal_status(const char *s)
{
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled") ||
           !strcmp(s, "timeout");
}

/* A returncode as a shell would report it: a negative one (killed by signal N) as 128+N. */
static int shell_code(json_int_t rc)
{
    if (rc < 0 && rc > -128) return (int)(128 - rc);
    return rc >= 0 && rc <= 255 ? (int)rc : 255;
}

/* An exec's state from a start or poll answer; -1 when the answer is not one. */
static int parse_exec_state(const json_t *body, exec_state *st)
{
    const json_t *status = json_object_get(body, "status");
    const json_t *id = json_object_get(body, "execId");
    const json_t *out = json_object_get(body, "output");
    const json_t *rc = json_object_get(body, "returncode");
    if (!json_is_string(status) || (id && !json_is_string(id)) ||
        (out && !json_is_string(out) && !json_is_null(out)) ||
        (rc && !json_is_integer(rc) && !json_is_null(rc)))
        return -1;
    st->exec_id = json_string_value(id);
    st->output = json_string_value(out);
    st->outlen = json_is_string(out) ? json_string_length(out) : 0;
    st->finished = terminal_status(json_string_value(status));
    st->exit_code = json_is_integer(rc) ? shell_code(json_integer_value(rc)) : 1;
    return 0;
}

/* ---- the sandbox ----------------------------------------------------------------- */

/* The body of the create request. */
static json_t *create_body(const sw_open_opts *o)
{
    const sw_config *c = o->config;
    json_int_t idle = MIN_IDLE_MS;
    if (c->timeout_s * 1000 > idle) idle = (json_int_t)c->timeout_s * 1000;
    if (c->lifetime_s * 1000 > idle) idle = (json_int_t)c->lifetime_s * 1000;
    /* "~" means nothing to the gateway; the wrapper script cds there itself. */
    const char *cwd = o->cwd && o->cwd[0] == '/' ? o->cwd : "/root";
    return json_pack("{s:s, s:s, s:f, s:f, s:I, s:I, s:b, s:s}",
                     "image", c->modal_image ? c->modal_image : DEFAULT_IMAGE,
                     "cwd", cwd,
                     "cpu", 1.0,
                     "memoryMiB", 5120.0,
                     "timeoutMs", (json_int_t)SANDBOX_LIFETIME_MS,
                     "idleTimeoutMs", idle,
                     "persistentFilesystem", !strcmp(c->container_persistent, "true"),
                     "logicalKey", o->task_id);
}

/* Creates a sandbox under a fresh idempotency key; *sid gets its escaped id. */
static int create_sandbox(sw_transport *t, char **sid, char *err, size_t n)
{
    char key[37], header[64];
    uuid4(key);
    snprintf(header, sizeof header, "x-idempotency-key: %s", key);
    const char *headers[] = {header, NULL};
    sw_http_req rq = {.method = "POST", .url = "/v1/sandboxes", .body = t->create,
                      .headers = headers, .timeout_ms = t->create_timeout_ms,
                      .retry_budget_ms = t->create_timeout_ms < CREATE_RETRY_MS
                                             ? t->create_timeout_ms : CREATE_RETRY_MS};
    sw_http_res res = {0};
    int rc = sw_http_do(t->http, &rq, &res);
    rc = answer_status(rc, &res, "create a sandbox", t->origin, false, err, n);
    if (rc == SW_TR_OK && parse_sandbox_id(res.json, sid) < 0) {
        snprintf(err, n, "the " PROVIDER " answered the sandbox creation without a sandbox id: "
                         "%.200s", res.body ? res.body : "");
        rc = SW_TR_ERROR;
    }
    sw_http_res_free(&res);
    return rc;
}

static void transport_free(sw_transport *t)
{
    sw_http_free(t->http);
    json_decref(t->create);
    pthread_mutex_destroy(&t->mu);
    free(t->sandbox);
    free(t->origin);
    free(t);
}

static int tr_connect(const sw_open_opts *o, sw_transport **out, char *err, size_t errlen)
{
    const sw_config *c = o->config;
    if (!c->modal_token) {
        snprintf(err, errlen, "the modal backend needs a tool gateway token: set " TOKEN_VAR);
        return SW_TR_ERROR;
    }
    sw_transport *t = sw_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->origin = gateway_origin(c->modal_gateway_url);
    t->http = sw_http_new(t->origin, c->modal_token, PROVIDER, TOKEN_VAR);
    t->create = create_body(o);
    t->persistent = !strcmp(c->container_persistent, "true");
    t->create_timeout_ms = o->connect_timeout_ms > 0 && o->connect_timeout_ms < CREATE_TIMEOUT_MS
                               ? o->connect_timeout_ms : CREATE_TIMEOUT_MS;
    int rc = SW_TR_ERROR;
    if (!t->create)
        snprintf(err, errlen, "the modal sandbox cannot be described to the gateway: "
                              "TERMINAL_MODAL_IMAGE, TERMINAL_CWD or the task id is not UTF-8");
    else
        rc = create_sandbox(t, &t->sandbox, err, errlen);
    if (rc != SW_TR_OK) {
        transport_free(t);
        return rc;
    }
    *out = t;
    return SW_TR_OK;
}

/* A new sandbox in place of a vanished one (a fresh idempotency key: the old key would
 * name the sandbox that is gone). */
static int tr_recreate(sw_transport *t, char *err, size_t errlen)
{
    char *sid = NULL;
    int rc = create_sandbox(t, &sid, err, errlen);
    if (rc != SW_TR_OK) return rc;
    pthread_mutex_lock(&t->mu);
    char *old = t->sandbox;
    t->sandbox = sid;
    pthread_mutex_unlock(&t->mu);
    free(old);
    return SW_TR_OK;
}

/* Terminates the sandbox. A persistent one is snapshotted first: the gateway keys the
 * snapshot by logicalKey (the task id), so the next sandbox of that task starts from it. */
static void tr_close(sw_transport *t)
{
    char *url = sw_printf("/v1/sandboxes/%s/terminate", t->sandbox);
    json_t *body = json_pack("{s:b}", "snapshotBeforeTerminate", t->persistent);
    sw_http_req rq = {.method = "POST", .url = url, .body = body,
                      .timeout_ms = TERMINATE_TIMEOUT_MS, .retry_budget_ms = TERMINATE_TIMEOUT_MS};
    sw_http_res res = {0};
    int rc = sw_http_do(t->http, &rq, &res);
    if (rc < 0 || (res.status >= 400 && res.status != 404))
        sw_warn("modal: could not terminate sandbox %s: %s", t->sandbox,
                res.error[0] ? res.error : "no answer");
    sw_http_res_free(&res);
    json_decref(body);
    free(url);
    transport_free(t);
}

/* ---- running a script ------------------------------------------------------------ */

typedef struct exec_run {
    sw_transport *t;
    const sw_exec_req *req;
    char *sid;                  /* escaped sandbox id */
    char id[37];                /* the exec's id */
    char *url;                  /* /v1/sandboxes/<sid>/execs/<id> */
    int64_t deadline;           /* ms (sw_now_ms); 0: none */
    int64_t next_tick;
    size_t delivered;           /* output bytes already passed to req->out */
    bool started;               /* the gateway accepted the exec */
    bool stopped;               /* req->out asked to stop */
} exec_run;

/* The limit for one step: cap_ms, or less when the deadline is nearer; -1 once it passed. */
static int step_limit(const exec_run *r, int cap_ms)
{
    if (!r->deadline) return cap_ms;
    int64_t left = r->deadline - sw_now_ms();
    if (left <= 0) return -1;
    return left < cap_ms ? (int)left : cap_ms;
}

static bool interrupted(const exec_run *r)
{
    return (r->req->cancel && sw_cancel_fired(r->req->cancel)) || step_limit(r, 1) < 0;
}

/* One call of the gateway while the script runs, bounded by its deadline and cancellation.
 * SW_TR_OK when an answer arrived that the caller must look at (a success or a 404). */
static int exec_call(exec_run *r, const char *method, const char *url, json_t *body,
                     int cap_ms, int retry_ms, const char *what, sw_http_res *res, char *err,
                     size_t n)
{
    int limit = step_limit(r, cap_ms);
    if (limit < 0) return SW_TR_INTERRUPTED;
    int budget = step_limit(r, retry_ms);
    sw_http_req rq = {.method = method, .url = url, .body = body, .timeout_ms = limit,
                      .retry_budget_ms = budget > limit ? budget : limit,
                      .cancel = r->req->cancel};
    int rc = sw_http_do(r->t->http, &rq, res);
    if (rc < 0 && (res->cancelled || interrupted(r))) return SW_TR_INTERRUPTED;
    return answer_status(rc, res, what, r->t->origin, true, err, n);
}

/* Passes the new part of the output on. */
static int deliver(exec_run *r, const exec_state *st)
{
    if (!st->output || st->outlen <= r->delivered) return SW_TR_OK;
    size_t from = r->delivered;
    r->delivered = st->outlen;
    if (r->req->out(r->req->ctx, st->output + from, st->outlen - from) == 0) return SW_TR_OK;
    r->stopped = true;
    return SW_TR_INTERRUPTED;
}

/* Takes in one answer: output on, and the exit code once the exec has finished. */
static int take_answer(exec_run *r, const sw_http_res *res, bool *done, int *exit_code,
                       char *err, size_t n)
{
    exec_state st;
    if (parse_exec_state(res->json, &st) < 0) {
        snprintf(err, n, "the " PROVIDER " sent a malformed answer about a command (HTTP %ld): "
                         "%.200s", res->status, res->body ? res->body : "");
        return SW_TR_ERROR;
    }
    if (st.exec_id && strcmp(st.exec_id, r->id)) {
        snprintf(err, n, "the " PROVIDER " answered about command %.40s instead of %s",
                 st.exec_id, r->id);
        return SW_TR_ERROR;
    }
    int rc = deliver(r, &st);
    if (rc == SW_TR_OK && st.finished) {
        *exit_code = st.exit_code;
        *done = true;
    }
    return rc;
}

/* Starts the exec: SW_TR_OK with *res to read, SW_TR_GONE when the sandbox has vanished. */
static int start_exec(exec_run *r, sw_http_res *res, char *err, size_t n)
{
    const sw_exec_req *req = r->req;
    json_int_t limit = req->timeout_ms > 0 ? (json_int_t)req->timeout_ms + EXEC_GRACE_MS
                                           : SANDBOX_LIFETIME_MS;
    json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:s}", "execId", r->id, "command", EXEC_COMMAND,
                             "cwd", "/", "timeoutMs", limit, "stdinData", req->script);
    if (!body) {
        snprintf(err, n, "the command cannot be sent to the " PROVIDER ": it is not valid UTF-8");
        return SW_TR_ERROR;
    }
    char *url = sw_printf("/v1/sandboxes/%s/execs", r->sid);
    int rc = exec_call(r, "POST", url, body, START_TIMEOUT_MS, START_RETRY_MS, "start a command",
                       res, err, n);
    free(url);
    json_decref(body);
    if (rc == SW_TR_OK && res->status == 404) {
        snprintf(err, n, "the modal sandbox is gone: %s", res->error);
        return SW_TR_GONE;
    }
    r->started = rc == SW_TR_OK;
    return rc;
}

static int poll_exec(exec_run *r, sw_http_res *res, char *err, size_t n)
{
    int rc = exec_call(r, "GET", r->url, NULL, POLL_TIMEOUT_MS, POLL_RETRY_MS, "poll a command",
                       res, err, n);
    if (rc == SW_TR_OK && res->status == 404) {
        snprintf(err, n, "the " PROVIDER " lost track of command %s (%s)", r->id, res->error);
        return SW_TR_ERROR;
    }
    return rc;
}

/* Sleeps until the next poll (or until the deadline or cancellation), ticking on the way. */
static int pause_poll(exec_run *r, int delay_ms)
{
    int64_t now = sw_now_ms();
    if (r->req->tick && now >= r->next_tick) {
        r->req->tick(r->req->ctx);
        r->next_tick = now + TICK_MS;
    }
    int wait = step_limit(r, delay_ms);
    if (wait < 0) return SW_TR_INTERRUPTED;
    struct pollfd p = {.fd = r->req->cancel ? r->req->cancel->fd : -1, .events = POLLIN};
    poll(&p, 1, wait);
    return interrupted(r) ? SW_TR_INTERRUPTED : SW_TR_OK;
}

/* Asks the gateway to stop the exec; best effort, bounded. */
static void cancel_exec(exec_run *r)
{
    char *url = sw_printf("%s/cancel", r->url);
    const char *headers[] = {"Content-Type: application/json", NULL};
    sw_http_req rq = {.method = "POST", .url = url, .headers = headers,
                      .timeout_ms = CANCEL_TIMEOUT_MS, .retry_budget_ms = CANCEL_TIMEOUT_MS};
    sw_http_res res = {0};
    int rc = sw_http_do(r->t->http, &rq, &res);
    if (rc < 0 || (res.status >= 400 && res.status != 404))
        sw_warn("modal: could not cancel command %s: %s", r->id,
                res.error[0] ? res.error : "no answer");
    sw_http_res_free(&res);
    free(url);
}

/* +25 % a step: about 20 polls in the first second, then the documented cadence. */
static int next_delay(int delay_ms)
{
    int next = delay_ms * 5 / 4 + 1;
    return next < MAX_POLL_MS ? next : MAX_POLL_MS;
}

static int tr_exec(sw_transport *t, const sw_exec_req *req, int *exit_code, char *err,
                   size_t errlen)
{
    exec_run r = {.t = t, .req = req, .sid = sandbox_id(t)};
    uuid4(r.id);
    r.url = sw_printf("/v1/sandboxes/%s/execs/%s", r.sid, r.id);
    int64_t start = sw_now_ms();
    r.deadline = req->timeout_ms > 0 ? start + req->timeout_ms : 0;
    r.next_tick = start + TICK_MS;
    sw_http_res res = {0};
    int rc = start_exec(&r, &res, err, errlen);
    bool done = false;
    for (int delay = FIRST_POLL_MS; rc == SW_TR_OK; delay = next_delay(delay)) {
        rc = take_answer(&r, &res, &done, exit_code, err, errlen);
        sw_http_res_free(&res);
        memset(&res, 0, sizeof res);
        if (rc != SW_TR_OK || done) break;
        rc = pause_poll(&r, delay);
        if (rc == SW_TR_OK) rc = poll_exec(&r, &res, err, errlen);
    }
    sw_http_res_free(&res);
    /* A command given up on must not run on unseen: after a deadline or cancellation (the
     * start may have arrived even if its answer did not), and after losing track of it. */
    if (!r.stopped && (rc == SW_TR_INTERRUPTED || (r.started && rc != SW_TR_OK)))
        cancel_exec(&r);
    free(r.url);
    free(r.sid);
    return rc;
}

static const sw_transport_ops transport = {
    .name = "modal",
    .connect = tr_connect,
    .exec = tr_exec,
    .recreate = tr_recreate,
    .close = tr_close,
};

static int modal_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    return sw_remote_open(&transport, o, out, err, errlen);
}

const sw_backend_ops sw_modal_ops = SW_REMOTE_OPS("modal", true, modal_open);
