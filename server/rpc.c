/* server/rpc.c — JSON-RPC 2.0 over newline-delimited stdio.
 *
 * Threads: the caller of sw_rpc_serve reads stdin and routes; quick methods are answered
 * right there, tool calls go to a bounded pool of worker threads (created on demand,
 * kept idle afterwards) so a long command never delays a ping. Any thread may write: a
 * mutex makes every line atomic. */
#include "server/rpc.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "server/log.h"
#include "server/mcp.h"
#include "server/util.h"

/* A batch collects its answers and is written as one array when the last one arrives. */
typedef struct sw_batch {
    json_t *answers;            /* array, one slot per request (null = notification) */
    size_t pending;
} sw_batch;

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static int out_fd = 1;          /* where protocol messages go (guarded by out_mu) */
static atomic_bool client_gone;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;    /* work queued */
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;    /* a request finished */
static sw_req *queue_head, *queue_tail;
static sw_req *inflight;        /* every request not yet freed */
static long n_threads, n_idle, max_threads;

/* The client can no longer read our answers: shut down (once) like on SIGTERM. */
static void client_left(void)
{
    if (atomic_exchange(&client_gone, true)) return;
    sw_warn("client closed stdout; shutting down");
    kill(getpid(), SIGTERM);
}

static void write_line(json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) { sw_error("cannot encode a response"); return; }
    struct iovec iov[2] = {{s, strlen(s)}, {"\n", 1}};
    pthread_mutex_lock(&out_mu);
    size_t total = iov[0].iov_len + 1;
    while (total > 0 && !atomic_load(&client_gone)) {
        ssize_t w = writev(out_fd, iov, 2);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EPIPE || errno == EBADF) client_left();
            break;
        }
        total -= (size_t)w;
        for (int i = 0; i < 2 && w > 0; i++) {
            size_t take = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + take;
            iov[i].iov_len -= take;
            w -= (ssize_t)take;
        }
    }
    pthread_mutex_unlock(&out_mu);
    free(s);
}

static json_t *make_error(json_t *id, int code, const char *message)
{
    return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                     "error", "code", code, "message", message);
}

static void req_free(sw_req *r)
{
    pthread_mutex_lock(&pool_mu);
    for (sw_req **pp = &inflight; *pp; pp = &(*pp)->next)
        if (*pp == r) { *pp = r->next; break; }
    pthread_cond_broadcast(&idle_cv);
    pthread_mutex_unlock(&pool_mu);
    sw_cancel_destroy(&r->cancel);
    json_decref(r->id);
    json_decref(r->msg);
    free(r);
}

/* Delivers an answer (steals it): straight to stdout, or into the request's batch. */
static void deliver(sw_req *r, json_t *answer)
{
    sw_batch *b = r->batch;
    if (!b) {
        if (!sw_cancel_fired(&r->cancel)) write_line(answer);
        json_decref(answer);
        return;
    }
    pthread_mutex_lock(&pool_mu);
    if (!sw_cancel_fired(&r->cancel)) json_array_set(b->answers, r->slot, answer);
    bool last = --b->pending == 0;
    pthread_mutex_unlock(&pool_mu);
    json_decref(answer);
    if (last) {
        json_t *out = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(b->answers, i, v) if (!json_is_null(v)) json_array_append(out, v);
        if (json_array_size(out) > 0) write_line(out);
        json_decref(out);
        json_decref(b->answers);
        free(b);
    }
}

void sw_rpc_reply(sw_req *r, json_t *result)
{
    if (r->answered) { json_decref(result); return; }
    json_t *msg = result ? json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", r->id, "result", result) : NULL;
    if (!msg) {
        sw_rpc_error(r, SW_RPC_INTERNAL_ERROR, "Internal error: the result could not be encoded");
        return;
    }
    r->answered = true;
    deliver(r, msg);
}

void sw_rpc_error(sw_req *r, int code, const char *fmt, ...)
{
    if (r->answered) return;
    r->answered = true;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sw_utf8_sanitize(msg);      /* a cut may split a character; JSON needs UTF-8 */
    deliver(r, make_error(r->id, code, msg));
}

void sw_rpc_notify(const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params", params);
    write_line(m);
    json_decref(m);
}

static void wake_requests(void);

void sw_rpc_cancel(const json_t *id)
{
    pthread_mutex_lock(&pool_mu);
    for (sw_req *r = inflight; r; r = r->next)
        if (json_equal(r->id, (json_t *)id)) sw_cancel_fire(&r->cancel);
    pthread_mutex_unlock(&pool_mu);
    wake_requests();
}

/* ---- requests from the server to the client --------------------------------------- */

typedef struct pending {
    json_t *id;
    json_t *answer;
    struct pending *next;
} pending;

static pthread_mutex_t pend_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pend_cv;          /* an answer arrived, or a call was cancelled */
static pthread_once_t pend_once = PTHREAD_ONCE_INIT;
static pending *pend_head;
static unsigned long pend_seq;

static void pend_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pend_cv, &ca);
    pthread_condattr_destroy(&ca);
}

json_t *sw_rpc_request(const char *method, json_t *params, int timeout_ms, sw_cancel *cancel)
{
    pthread_once(&pend_once, pend_init);
    pending p = {0};
    pthread_mutex_lock(&pend_mu);
    p.id = json_sprintf("shellwire-%lu", ++pend_seq);
    p.next = pend_head;
    pend_head = &p;
    pthread_mutex_unlock(&pend_mu);
    json_t *m = json_pack("{s:s, s:O, s:s, s:o}", "jsonrpc", "2.0", "id", p.id, "method", method,
                          "params", params);
    write_line(m);
    json_decref(m);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
    pthread_mutex_lock(&pend_mu);
    while (!p.answer && !(cancel && sw_cancel_fired(cancel)))
        if (pthread_cond_timedwait(&pend_cv, &pend_mu, &until) == ETIMEDOUT) break;
    for (pending **pp = &pend_head; *pp; pp = &(*pp)->next)
        if (*pp == &p) { *pp = p.next; break; }
    pthread_mutex_unlock(&pend_mu);
    if (!p.answer)
        sw_rpc_notify("notifications/cancelled",
                      json_pack("{s:O, s:s}", "requestId", p.id, "reason", "no answer in time"));
    json_decref(p.id);
    return p.answer;
}

/* Hands a response from the client to the request waiting for it; false if none is. */
static bool route_answer(json_t *msg)
{
    pthread_once(&pend_once, pend_init);
    json_t *id = json_object_get(msg, "id");
    bool found = false;
    pthread_mutex_lock(&pend_mu);
    for (pending *p = pend_head; p; p = p->next)
        if (!p->answer && json_equal(p->id, id)) {
            p->answer = json_incref(msg);
            found = true;
        }
    pthread_cond_broadcast(&pend_cv);
    pthread_mutex_unlock(&pend_mu);
    return found;
}

/* Wakes server requests so they notice a cancellation. */
static void wake_requests(void)
{
    pthread_once(&pend_once, pend_init);
    pthread_mutex_lock(&pend_mu);
    pthread_cond_broadcast(&pend_cv);
    pthread_mutex_unlock(&pend_mu);
}

/* ---- worker pool ------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool_mu);
    for (;;) {
        while (!queue_head) {
            n_idle++;
            pthread_cond_wait(&pool_cv, &pool_mu);
            n_idle--;
        }
        sw_req *r = queue_head;
        queue_head = r->qnext;
        if (!queue_head) queue_tail = NULL;
        pthread_mutex_unlock(&pool_mu);
        sw_mcp_work(r);
        if (!r->answered) sw_rpc_error(r, SW_RPC_INTERNAL_ERROR, "the call produced no result");
        if (r->after_reply) r->after_reply(r->after_ctx);
        req_free(r);
        pthread_mutex_lock(&pool_mu);
    }
    return NULL;
}

static void submit(sw_req *r)
{
    pthread_mutex_lock(&pool_mu);
    r->qnext = NULL;
    if (queue_tail) queue_tail->qnext = r;
    else queue_head = r;
    queue_tail = r;
    if (n_idle == 0 && n_threads < max_threads) {
        if (sw_thread_detached(worker_main, NULL, 512 * 1024) == 0) n_threads++;
        if (n_threads == 0) sw_error("cannot start a worker thread");
    }
    pthread_cond_signal(&pool_cv);
    pthread_mutex_unlock(&pool_mu);
}

/* ---- message handling ------------------------------------------------------------- */

static bool valid_id(const json_t *id)
{
    return json_is_string(id) || json_is_integer(id) || json_is_real(id);
}

/* Handles one message object; `batch` is NULL outside batches. Returns true when the
 * message produced (or will produce) an answer in the batch. */
static bool handle_object(json_t *msg, sw_batch *batch, size_t slot)
{
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    json_t *params = json_object_get(msg, "params");
    json_t *ver = json_object_get(msg, "jsonrpc");
    bool is_request = id != NULL;

    const char *problem = NULL;
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0)
        problem = "Invalid Request: \"jsonrpc\" must be \"2.0\"";
    else if (is_request && !valid_id(id))
        problem = "Invalid Request: \"id\" must be a string or a number";
    else if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
        /* A response to a request of ours (a late one is dropped). */
        if (!route_answer(msg)) sw_debug("dropping a response nobody waits for");
        return false;
    } else if (!json_is_string(method))
        problem = "Invalid Request: \"method\" must be a string";
    else if (params && !json_is_object(params) && !json_is_array(params))
        problem = "Invalid Request: \"params\" must be an object";

    sw_req *r = sw_xcalloc(1, sizeof *r);
    r->msg = json_incref(msg);
    /* An id that can be read is echoed even when the rest of the request is invalid. */
    r->id = json_incref(valid_id(id) ? id : json_null());
    r->batch = batch;
    r->slot = slot;
    sw_cancel_init(&r->cancel);
    pthread_mutex_lock(&pool_mu);
    r->next = inflight;
    inflight = r;
    pthread_mutex_unlock(&pool_mu);

    if (problem) {
        sw_rpc_error(r, SW_RPC_INVALID_REQUEST, "%s", problem);
        req_free(r);
        return true;
    }
    const char *m = json_string_value(method);
    if (!is_request) {
        sw_mcp_notification(m, json_is_object(params) ? params : NULL);
        r->answered = true;
        if (batch) deliver(r, json_null());
        req_free(r);
        return batch != NULL;
    }
    if (params && !json_is_object(params)) {
        sw_rpc_error(r, SW_RPC_INVALID_PARAMS, "Invalid params: \"params\" must be an object");
        req_free(r);
        return true;
    }
    r->method = m;
    r->params = params;
    json_t *meta = params ? json_object_get(params, "_meta") : NULL;
    json_t *tok = json_is_object(meta) ? json_object_get(meta, "progressToken") : NULL;
    if (json_is_string(tok) || json_is_integer(tok)) r->progress_token = tok;
    if (batch && !strcmp(m, "initialize")) {
        sw_rpc_error(r, SW_RPC_INVALID_REQUEST, "Invalid Request: initialize must not be sent in a batch");
        req_free(r);
        return true;
    }
    if (sw_mcp_request(r) == SW_ROUTE_WORKER) submit(r);
    else req_free(r);
    return true;
}

static void handle_line(char *line, size_t len)
{
    json_error_t jerr;
    json_t *msg = json_loadb(line, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (!msg) {
        char text[300];
        snprintf(text, sizeof text, "Parse error: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        json_t *e = make_error(NULL, SW_RPC_PARSE_ERROR, text);
        write_line(e);
        json_decref(e);
        return;
    }
    if (json_is_object(msg)) {
        handle_object(msg, NULL, 0);
    } else if (json_is_array(msg) && sw_mcp_batches_allowed() && json_array_size(msg) > 0) {
        size_t n = json_array_size(msg);
        sw_batch *b = sw_xcalloc(1, sizeof *b);
        b->answers = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(b->answers, json_null());
        b->pending = n + 1;     /* +1 keeps the batch alive until every element is routed */
        for (size_t i = 0; i < n; i++) {
            json_t *el = json_array_get(msg, i);
            if (json_is_object(el)) {
                if (!handle_object(el, b, i)) {
                    pthread_mutex_lock(&pool_mu);
                    b->pending--;
                    pthread_mutex_unlock(&pool_mu);
                }
            } else {
                sw_req tmp = {.id = json_null(), .batch = b, .slot = i};
                sw_cancel_init(&tmp.cancel);
                sw_rpc_error(&tmp, SW_RPC_INVALID_REQUEST, "Invalid Request: a batch element must be an object");
                sw_cancel_destroy(&tmp.cancel);
            }
        }
        sw_req tmp = {.id = json_null(), .batch = b, .answered = true};
        sw_cancel_init(&tmp.cancel);
        sw_cancel_fire(&tmp.cancel);     /* the keep-alive slot delivers nothing */
        deliver(&tmp, json_null());
        sw_cancel_destroy(&tmp.cancel);
    } else {
        const char *why = json_is_array(msg)
            ? (json_array_size(msg) == 0 ? "Invalid Request: empty batch"
                                         : "Invalid Request: batches are only accepted under protocol version 2025-03-26")
            : "Invalid Request: a message must be a JSON object";
        json_t *e = make_error(NULL, SW_RPC_INVALID_REQUEST, why);
        write_line(e);
        json_decref(e);
    }
    json_decref(msg);
}

/* ---- the reader ------------------------------------------------------------------ */

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

static void line_too_long(size_t limit)
{
    char text[160];
    snprintf(text, sizeof text, "Invalid Request: line longer than the limit of %zu bytes", limit);
    json_t *e = make_error(NULL, SW_RPC_INVALID_REQUEST, text);
    write_line(e);
    json_decref(e);
}

/* Waits (in poll, no timer) for the reader of stdout to go away. Without this a client
 * that closed our stdout, or died, would only be noticed at the next write: a command
 * with a long timeout would keep running, unseen, until then. A pipe reports POLLERR
 * once it has no reader, a socket POLLHUP once the peer closed it; terminals, files and
 * /dev/null report neither and the thread just sleeps. */
static void *stdout_watch_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = 0};
        int r = poll(&p, 1, -1);
        if (r < 0 && errno == EINTR) continue;
        if (r > 0 && (p.revents & (POLLERR | POLLHUP))) client_left();
        return NULL;
    }
}

int sw_rpc_serve(const sw_config *cfg)
{
    if (sw_thread_detached(stdout_watch_main, (void *)(intptr_t)1, 64 * 1024) != 0)
        sw_warn("cannot watch stdout; a client that goes away is noticed at the next answer");
    return sw_rpc_serve_fds(cfg, 0, 1);
}

int sw_rpc_serve_fds(const sw_config *cfg, int in_fd, int output_fd)
{
    pthread_mutex_lock(&out_mu);
    out_fd = output_fd;
    pthread_mutex_unlock(&out_mu);
    max_threads = cfg->workers;
    size_t limit = (size_t)cfg->max_line_bytes;
    size_t cap = 64 * 1024, len = 0;
    char *buf = sw_xmalloc(cap);
    bool skipping = false;      /* inside an over-long line: drop bytes until its newline */
    for (;;) {
        if (len == cap) buf = sw_xrealloc(buf, cap *= 2);
        ssize_t r = read(in_fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t scan = len, start = 0;
        len += (size_t)r;
        char *nl;
        while ((nl = memchr(buf + scan, '\n', len - scan))) {
            size_t end = (size_t)(nl - buf), n = end - start;
            if (skipping) skipping = false;
            else {
                if (n > 0 && buf[start + n - 1] == '\r') n--;
                if (n > limit) line_too_long(limit);
                else if (!blank(buf + start, n)) handle_line(buf + start, n);
            }
            start = scan = end + 1;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        if (skipping) len = 0;
        else if (len > limit) {
            line_too_long(limit);   /* answer once, then discard the rest of the line */
            skipping = true;
            len = 0;
        }
        if (cap > 1024 * 1024 && len < cap / 4) {
            cap = len < 64 * 1024 ? 64 * 1024 : len * 2;   /* give memory back after a big line */
            buf = sw_xrealloc(buf, cap);
        }
    }
    if (len > 0 && !skipping && !blank(buf, len)) handle_line(buf, len);  /* no final newline */
    free(buf);
    /* stdin is closed: let the calls in flight finish and answer. */
    pthread_mutex_lock(&pool_mu);
    while (inflight) pthread_cond_wait(&idle_cv, &pool_mu);
    pthread_mutex_unlock(&pool_mu);
    return 0;
}

/* Fires every in-flight call's cancellation (shutdown). */
void sw_rpc_cancel_all(void)
{
    pthread_mutex_lock(&pool_mu);
    for (sw_req *r = inflight; r; r = r->next) sw_cancel_fire(&r->cancel);
    pthread_mutex_unlock(&pool_mu);
}

void sw_rpc_lock_output(void) { pthread_mutex_lock(&out_mu); }
