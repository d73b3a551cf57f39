/* backends/http.c — JSON over HTTP for the cloud backends (http.h), on libcurl + jansson.
 *
 * Connections. An sw_http keeps a small pool of idle "connections": a curl easy handle
 * paired with its own multi handle, whose connection cache keeps the TCP/TLS connection
 * to the provider open between requests. A request borrows one (or makes a new one when
 * all are busy, so concurrent requests never wait for each other) and gives it back.
 *
 * One attempt runs the transfer through curl_multi_poll with the cancellation token's
 * eventfd as an extra descriptor, so a cancel aborts it at once. curl enforces the
 * connect timeout and the per-attempt deadline itself.
 *
 * Retries, with exponential backoff and full jitter, bounded by the retry budget:
 *  - 429 and 5xx answers (a Retry-After header, in seconds or as an HTTP date, is
 *    honoured instead of the backoff; beyond the budget we give up at once);
 *  - connection failures. A request that certainly never reached the server (name
 *    resolution, connect, TLS handshake, a deadline hit while connecting) is always
 *    retried; one that may have (the connection broke after sending) only when it is
 *    idempotent: GET/HEAD/PUT/DELETE, or any method carrying an Idempotency-Key. Running
 *    a command twice because a reply got lost would be worse than reporting the failure.
 * Other 4xx answers and deadlines hit after the request was sent are never retried.
 *
 * Secrets: the token is only ever put in the Authorization header; nothing here logs
 * headers, and error texts taken from a provider's body are scrubbed of the token. */
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "backends/http.h"
#include "backends/remote.h"
#include "server/log.h"
#include "server/util.h"

#ifndef SW_VERSION
#define SW_VERSION "dev"
#endif

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_BUDGET_MS 20000
#define CONNECT_TIMEOUT_MS 10000
#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 4000
#define POLL_SLICE_MS 1000
#define POOL_IDLE_MAX 8
#define MAX_BODY ((size_t)64 << 20)     /* a sync exec returns all output in one body */
#define ERROR_TEXT_MAX 240

typedef struct conn {
    CURL *easy;
    CURLM *multi;
    struct conn *next;
} conn;

struct sw_http {
    char *base;                 /* without a trailing slash */
    char *auth;                 /* "Authorization: Bearer ..." or NULL */
    char *token;                /* for scrubbing error texts; NULL when none */
    char *provider;
    char *token_var;
    pthread_mutex_t mu;
    conn *idle;                 /* guarded by mu */
    int nidle;
};

/* What one attempt produced. */
typedef struct attempt {
    CURLcode code;
    long status;
    bool sent;                  /* the request may have reached the server */
    bool cancelled;
    bool too_big;
    long retry_after_ms;        /* from a Retry-After header, or -1 */
    char *body;
    size_t len, cap;
    char curl_err[CURL_ERROR_SIZE];
} attempt;

/* ------------------------------------------------------------------ text helpers */

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is invalid
 * (bad or missing continuation bytes, overlong forms, surrogates, beyond U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || len > n) return 0;
    unsigned long cp = len == 1 ? s[0] : s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const unsigned long least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* A one-line copy of at most max bytes of s: valid UTF-8 (an invalid byte becomes '?'),
 * control characters as spaces, never cut inside a character, blanks trimmed. */
static char *clean_text(const char *s, size_t len, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    while (len && *p <= ' ') p++, len--;
    char *out = sw_xmalloc(max + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (o + (n ? n : 1) > max) break;
        if (n == 0) out[o++] = '?', i++;
        else if (n == 1) out[o++] = (p[i] < ' ' || p[i] == 0x7f) ? ' ' : (char)p[i], i++;
        else memcpy(out + o, p + i, n), o += n, i += n;
    }
    while (o && out[o - 1] == ' ') o--;
    out[o] = 0;
    return out;
}

static void append(char **acc, const char *sep, const char *piece)
{
    if (!piece || !*piece) return;
    char *next = *acc ? sw_printf("%s%s%s", *acc, sep, piece) : sw_strdup(piece);
    free(*acc);
    *acc = next;
}

static char *message_of(const json_t *v);

/* One validation entry: "msg" (FastAPI: with "loc") or "message", or a plain string. */
static char *entry_text(const json_t *e)
{
    if (json_is_string(e)) return sw_strdup(json_string_value(e));
    const char *msg = json_string_value(json_object_get(e, "msg"));
    if (!msg) return message_of(e);
    char *where = NULL;
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(e, "loc"), i, part) {
        char num[32];
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(part));
        append(&where, ".", json_is_string(part) ? json_string_value(part) : num);
    }
    char *out = where ? sw_printf("%s: %s", where, msg) : sw_strdup(msg);
    free(where);
    return out;
}

/* The text of a message value: a string, a list of entries joined with "; ", or an
 * object holding one of the known keys. */
static char *value_text(const json_t *v)
{
    if (json_is_string(v)) return sw_strdup(json_string_value(v));
    if (json_is_array(v)) {
        char *acc = NULL;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            char *t = entry_text(e);
            append(&acc, "; ", t);
            free(t);
        }
        return acc;
    }
    if (json_is_object(v)) return message_of(v);
    return NULL;
}

/* The message of a provider's error object: "message", "error" or "detail". */
static char *message_of(const json_t *v)
{
    static const char *const keys[] = {"message", "error", "detail"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char *t = value_text(json_object_get(v, keys[i]));
        if (t && *t) return t;
        free(t);
    }
    return NULL;
}

char *sw_http_error_text(long status, const char *body, size_t len)
{
    char *msg = NULL;
    json_t *j = (body && len) ? json_loadb(body, len, 0, NULL) : NULL;
    if (json_is_object(j)) msg = message_of(j);
    json_decref(j);
    char *text = msg ? clean_text(msg, strlen(msg), ERROR_TEXT_MAX)
                     : clean_text(body ? body : "", body ? len : 0, ERROR_TEXT_MAX);
    free(msg);
    char *out = *text ? sw_printf("HTTP %ld: %s", status, text)
                      : sw_printf("HTTP %ld with no error details", status);
    free(text);
    return out;
}

/* Seconds ("120") or an HTTP date; the wait in ms from `now`, or -1 when unparsable. */
static long parse_retry_after(const char *v, time_t now)
{
    while (*v == ' ' || *v == '\t') v++;
    if (*v >= '0' && *v <= '9') {
        char *end;
        errno = 0;
        unsigned long s = strtoul(v, &end, 10);
        while (*end == ' ' || *end == '\t') end++;
        if (*end || errno) return -1;
        return s > 86400 ? 86400L * 1000 : (long)s * 1000;
    }
    time_t t = curl_getdate(v, NULL);
    if (t == -1) return -1;
    return t <= now ? 0 : (t - now > 86400 ? 86400L * 1000 : (long)(t - now) * 1000);
}

/* Replaces every occurrence of the token in s (in place) by asterisks. */
static void scrub(const sw_http *h, char *s)
{
    if (!h->token) return;
    size_t n = strlen(h->token);
    for (char *p = strstr(s, h->token); p; p = strstr(p + n, h->token)) memset(p, '*', n);
}

/* ------------------------------------------------------------------ the handle */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

sw_http *sw_http_new(const char *base_url, const char *token, const char *provider,
                     const char *token_var)
{
    pthread_once(&curl_once, curl_init_once);
    sw_http *h = sw_xcalloc(1, sizeof *h);
    h->base = sw_strdup(base_url ? base_url : "");
    for (size_t n = strlen(h->base); n && h->base[n - 1] == '/'; n--) h->base[n - 1] = 0;
    if (token && *token) {
        h->token = sw_strdup(token);
        h->auth = sw_printf("Authorization: Bearer %s", token);
    }
    h->provider = sw_strdup(provider ? provider : "the API");
    h->token_var = sw_strdup(token_var ? token_var : "the API token");
    pthread_mutex_init(&h->mu, NULL);
    return h;
}

static void conn_free(conn *c)
{
    curl_multi_cleanup(c->multi);
    curl_easy_cleanup(c->easy);
    free(c);
}

void sw_http_free(sw_http *h)
{
    if (!h) return;
    while (h->idle) {
        conn *c = h->idle;
        h->idle = c->next;
        conn_free(c);
    }
    pthread_mutex_destroy(&h->mu);
    if (h->auth) explicit_bzero(h->auth, strlen(h->auth));
    if (h->token) explicit_bzero(h->token, strlen(h->token));
    free(h->auth);
    free(h->token);
    free(h->base);
    free(h->provider);
    free(h->token_var);
    free(h);
}

static conn *borrow(sw_http *h)
{
    pthread_mutex_lock(&h->mu);
    conn *c = h->idle;
    if (c) {
        h->idle = c->next;
        h->nidle--;
    }
    pthread_mutex_unlock(&h->mu);
    if (c) return c;
    c = sw_xcalloc(1, sizeof *c);
    c->easy = curl_easy_init();
    c->multi = curl_multi_init();
    if (!c->easy || !c->multi) {
        if (c->easy) curl_easy_cleanup(c->easy);
        if (c->multi) curl_multi_cleanup(c->multi);
        free(c);
        return NULL;
    }
    return c;
}

static void give_back(sw_http *h, conn *c)
{
    pthread_mutex_lock(&h->mu);
    bool keep = h->nidle < POOL_IDLE_MAX;
    if (keep) {
        c->next = h->idle;
        h->idle = c;
        h->nidle++;
    }
    pthread_mutex_unlock(&h->mu);
    if (!keep) conn_free(c);
}

void sw_http_res_free(sw_http_res *res)
{
    if (!res) return;
    free(res->body);
    json_decref(res->json);
    memset(res, 0, sizeof *res);
}

/* ------------------------------------------------------------------ one attempt */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    attempt *a = ctx;
    size_t n = size * nmemb;
    if (a->len + n > MAX_BODY) {
        a->too_big = true;
        return 0;                               /* aborts the transfer */
    }
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + n + 1) cap *= 2;
        a->body = sw_xrealloc(a->body, cap);
        a->cap = cap;
    }
    memcpy(a->body + a->len, data, n);
    a->len += n;
    a->body[a->len] = 0;
    return n;
}

static bool is_absolute(const char *url)
{
    return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8);
}

static struct curl_slist *build_headers(const sw_http *h, const sw_http_req *req)
{
    struct curl_slist *l = NULL;
    if (h->auth) l = curl_slist_append(l, h->auth);
    l = curl_slist_append(l, "Accept: application/json");
    l = curl_slist_append(l, "Expect:");          /* no 100-continue round trip */
    if (req->body) l = curl_slist_append(l, "Content-Type: application/json");
    if (req->idempotency_key) {
        char *k = sw_printf("Idempotency-Key: %s", req->idempotency_key);
        l = curl_slist_append(l, k);
        free(k);
    }
    for (const char *const *x = req->headers; x && *x; x++) l = curl_slist_append(l, *x);
    return l;
}

static void set_options(conn *c, const char *url, const sw_http_req *req, const char *body,
                        struct curl_slist *headers, int timeout_ms, attempt *a)
{
    CURL *e = c->easy;
    curl_easy_reset(e);                           /* keeps the open connection */
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "shellwire/" SW_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a->curl_err);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS));
    const char *m = req->method ? req->method : "GET";
    if (body || !strcmp(m, "POST")) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    }
    if (strcmp(m, "GET") && strcmp(m, "POST")) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
}

/* Drives the transfer; returns its result, or sets a->cancelled when the token fired. */
static CURLcode transfer(conn *c, const sw_http_req *req, attempt *a)
{
    sw_cancel *cancel = req->cancel;
    int64_t next_tick = sw_now_ms() + 1000;
    if (cancel && sw_cancel_fired(cancel)) {
        a->cancelled = true;
        return CURLE_ABORTED_BY_CALLBACK;
    }
    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK) return CURLE_FAILED_INIT;
    CURLcode rc = CURLE_OK;
    int running = 1;
    while (running) {
        if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            break;
        }
        if (!running) break;
        struct curl_waitfd extra = {.fd = cancel ? cancel->fd : -1, .events = CURL_WAIT_POLLIN};
        curl_multi_poll(c->multi, cancel ? &extra : NULL, cancel ? 1 : 0, POLL_SLICE_MS, NULL);
        if (cancel && sw_cancel_fired(cancel)) {
            a->cancelled = true;
            rc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        if (req->tick && sw_now_ms() >= next_tick) {
            req->tick(req->tick_ctx);
            next_tick = sw_now_ms() + 1000;
        }
    }
    CURLMsg *msg;
    int left;
    while (!a->cancelled && (msg = curl_multi_info_read(c->multi, &left)))
        if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
    curl_multi_remove_handle(c->multi, c->easy);
    return rc;
}

static long header_retry_after(CURL *e)
{
    struct curl_header *hd;
    if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &hd) != CURLHE_OK) return -1;
    return parse_retry_after(hd->value, time(NULL));
}

static void run_attempt(conn *c, const char *url, const sw_http_req *req, const char *body,
                        struct curl_slist *headers, int timeout_ms, attempt *a)
{
    set_options(c, url, req, body, headers, timeout_ms, a);
    a->code = transfer(c, req, a);
    a->retry_after_ms = -1;
    long sent = 0;
    curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &sent);
    a->sent = sent > 0;
    if (a->code == CURLE_OK) {
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &a->status);
        if (a->status == 429 || a->status >= 500) a->retry_after_ms = header_retry_after(c->easy);
    }
}

/* ------------------------------------------------------------------ retries */

static bool idempotent(const sw_http_req *req)
{
    const char *m = req->method ? req->method : "GET";
    return req->idempotency_key || !strcmp(m, "GET") || !strcmp(m, "HEAD") ||
           !strcmp(m, "PUT") || !strcmp(m, "DELETE");
}

/* Whether a transfer that failed without an answer may be tried again. */
static bool retryable_failure(const sw_http_req *req, const attempt *a)
{
    switch (a->code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    case CURLE_OPERATION_TIMEDOUT:
        return !a->sent;                          /* the deadline hit while connecting */
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return !a->sent || idempotent(req);
    default:
        return false;
    }
}

static bool retryable_status(long status) { return status == 429 || status >= 500; }

/* Full jitter: uniform in [0, min(cap, first * 2^n)]. */
static long backoff_ms(int n)
{
    long d = BACKOFF_FIRST_MS;
    for (int i = 0; i < n && d < BACKOFF_MAX_MS; i++) d *= 2;
    if (d > BACKOFF_MAX_MS) d = BACKOFF_MAX_MS;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (uint32_t)sw_now_ns();
    return (long)(r % (uint32_t)(d + 1));
}

/* Sleeps ms unless the token fires first; false when it fired. */
static bool pause_ms(sw_cancel *cancel, long ms)
{
    if (!cancel) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
        return true;
    }
    int64_t end = sw_now_ms() + ms;
    for (;;) {
        if (sw_cancel_fired(cancel)) return false;
        int64_t left = end - sw_now_ms();
        if (left <= 0) return true;
        struct pollfd p = {.fd = cancel->fd, .events = POLLIN};
        poll(&p, 1, (int)(left > INT_MAX ? INT_MAX : left));
    }
}

/* The message for a request that got no usable answer. */
static void failure_text(const sw_http *h, const attempt *a, int attempts, int timeout_ms,
                         char *out, size_t n)
{
    const char *tries = attempts > 1 ? " (after several attempts)" : "";
    if (a->cancelled)
        snprintf(out, n, "the request to %s was cancelled", h->provider);
    else if (a->too_big)
        snprintf(out, n, "%s sent a response larger than %zu MiB", h->provider, MAX_BODY >> 20);
    else if (a->code == CURLE_OPERATION_TIMEDOUT && a->sent)
        snprintf(out, n, "%s did not answer within %.1f s", h->provider, timeout_ms / 1000.0);
    else if (a->code != CURLE_OK)
        snprintf(out, n, "cannot reach %s: %s%s", h->provider,
                 a->curl_err[0] ? a->curl_err : curl_easy_strerror(a->code), tries);
    else {
        char *t = sw_http_error_text(a->status, a->body, a->len);
        snprintf(out, n, "%s %s%s", h->provider,
                 a->status == 429 ? "is rate limiting requests" : "is failing", tries);
        size_t used = strlen(out);
        snprintf(out + used, n - used, ": %s", t);
        used = strlen(out);
        if (a->retry_after_ms >= 0)
            snprintf(out + used, n - used, " (it asks to retry after %ld s)",
                     (a->retry_after_ms + 999) / 1000);
        free(t);
    }
}

/* The message for an answer with an error status. */
static void status_text(const sw_http *h, const attempt *a, char *out, size_t n)
{
    char *t = sw_http_error_text(a->status, a->body, a->len);
    if (a->status == 401 || a->status == 403)
        snprintf(out, n, "%s refused the credentials (%s); check %s", h->provider, t,
                 h->token_var);
    else
        snprintf(out, n, "%s: %s", h->provider, t);
    free(t);
}

static void finish(sw_http *h, attempt *a, sw_http_res *res)
{
    res->status = a->code == CURLE_OK ? a->status : 0;
    res->body = a->body ? a->body : sw_strdup("");
    res->len = a->len;
    a->body = NULL;
    res->json = res->len ? json_loadb(res->body, res->len, 0, NULL) : NULL;
    scrub(h, res->error);
}

int sw_http_do(sw_http *h, const sw_http_req *req, sw_http_res *res)
{
    memset(res, 0, sizeof *res);
    char *url = is_absolute(req->url) ? sw_strdup(req->url) : sw_printf("%s%s", h->base, req->url);
    char *body = req->body ? json_dumps(req->body, JSON_COMPACT) : NULL;
    struct curl_slist *headers = build_headers(h, req);
    int timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    int budget_ms = req->retry_budget_ms > 0 ? req->retry_budget_ms : DEFAULT_BUDGET_MS;
    const char *method = req->method ? req->method : "GET";
    int64_t start = sw_now_ms();
    int rc = -1;
    attempt a;
    for (int n = 0;; n++) {
        memset(&a, 0, sizeof a);
        conn *c = borrow(h);
        if (!c) {
            snprintf(res->error, sizeof res->error, "cannot set up a request to %s", h->provider);
            res->body = sw_strdup("");
            break;
        }
        int64_t t0 = sw_now_ms();
        run_attempt(c, url, req, body, headers, timeout_ms, &a);
        give_back(h, c);
        sw_debug("%s: %s %s -> %ld%s%s (%lld ms, attempt %d)", h->provider, method, url,
                 a.status, a.code ? ", " : "", a.code ? curl_easy_strerror(a.code) : "",
                 (long long)(sw_now_ms() - t0), n + 1);
        bool answered = a.code == CURLE_OK;
        bool again = answered ? retryable_status(a.status) : retryable_failure(req, &a);
        if (answered && !again) {
            if (a.status >= 400) status_text(h, &a, res->error, sizeof res->error);
            rc = 0;
        } else if (again && !a.cancelled) {
            long wait = a.retry_after_ms >= 0 ? a.retry_after_ms : backoff_ms(n);
            if (sw_now_ms() - start + wait < budget_ms) {
                if (pause_ms(req->cancel, wait)) {
                    free(a.body);
                    continue;
                }
                a.cancelled = true;
            }
        }
        if (rc < 0) failure_text(h, &a, n + 1, timeout_ms, res->error, sizeof res->error);
        res->timed_out = a.code == CURLE_OPERATION_TIMEDOUT && a.sent;
        res->cancelled = a.cancelled;
        finish(h, &a, res);
        break;
    }
    curl_slist_free_all(headers);
    free(body);
    free(url);
    return rc;
}

char *sw_http_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = sw_strdup(e ? e : "");
    curl_free(e);
    return out;
}

int sw_http_failure(int rc, const sw_http_res *res, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", res->error);
    if (rc < 0) return SW_TR_DEGRADED;
    return res->status == 404 ? SW_TR_GONE : SW_TR_ERROR;
}

int sw_http_malformed(const char *provider, const sw_http_res *res, const char *what, char *err,
                      size_t errlen)
{
    char *start = sw_http_error_text(res->status, res->body, res->len);
    snprintf(err, errlen, "%s sent a malformed answer to %s (%s)", provider, what, start);
    free(start);
    return SW_TR_ERROR;
}
