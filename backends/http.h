/* backends/http.h — the HTTP layer the cloud backends (modal, daytona, morph) share:
 * JSON requests on libcurl + jansson with bearer auth, connect/read deadlines,
 * cancellation, and retries with exponential backoff and jitter for connection errors,
 * 429 (honouring Retry-After) and 5xx — never for other 4xx. Tokens are never logged.
 *
 * One sw_http per environment keeps its connections alive between requests; it is safe to
 * use from several threads at once (each request borrows a handle from a small pool). */
#ifndef SW_HTTP_H
#define SW_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "backends/proc.h"

typedef struct sw_http sw_http;

typedef struct sw_http_req {
    const char *method;         /* "GET", "POST", "DELETE", ... */
    const char *url;            /* absolute, or a path appended to the base URL */
    json_t *body;               /* sent as application/json when not NULL (borrowed) */
    const char *idempotency_key;/* sent as Idempotency-Key when not NULL */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
    int timeout_ms;             /* whole-request deadline per attempt; 0: the default (30 s) */
    int retry_budget_ms;        /* give up retrying after this long; 0: the default (20 s) */
    sw_cancel *cancel;          /* aborts the request (and its retries) when fired; may be NULL */
    void (*tick)(void *ctx);    /* called about once a second while waiting; may be NULL */
    void *tick_ctx;
} sw_http_req;

typedef struct sw_http_res {
    long status;                /* HTTP status of the last attempt; 0 when none arrived */
    char *body;                 /* raw body, NUL-terminated (owned) */
    size_t len;
    json_t *json;               /* parsed body, or NULL when not JSON (owned) */
    bool timed_out;             /* the last attempt hit timeout_ms */
    bool cancelled;
    char error[512];            /* why it failed: transport error, or the provider's message */
} sw_http_res;

/* `provider` names the service in messages ("Daytona API"); `token_var` is the variable the
 * token came from, named in the message for 401/403. */
sw_http *sw_http_new(const char *base_url, const char *token, const char *provider,
                     const char *token_var);
void sw_http_free(sw_http *h);

/* Performs the request with retries. Returns 0 when a response arrived (any status: look
 * at res->status; for >= 400, res->error holds the message extracted from the provider's
 * error body), or -1 when none did (connection failure, timeout, cancellation, or 5xx/429
 * still failing when the retry budget ran out; res->error says which). Free res with
 * sw_http_res_free. */
int sw_http_do(sw_http *h, const sw_http_req *req, sw_http_res *res);
void sw_http_res_free(sw_http_res *res);

/* The error text of a provider's JSON error body ({"message": ...}, {"error": ...},
 * {"error": {"message": ...}}, {"detail": ...}), or the start of a non-JSON body. Owned
 * by the caller. */
char *sw_http_error_text(long status, const char *body, size_t len);

/* For transports (remote.h codes): the status of a failed request — SW_TR_DEGRADED when
 * no answer came (rc < 0), SW_TR_GONE for 404, else SW_TR_ERROR — with res->error in err. */
int sw_http_failure(int rc, const sw_http_res *res, char *err, size_t errlen);
/* SW_TR_ERROR, with err saying the provider's ("the Morph API") answer to `what` was
 * malformed. */
int sw_http_malformed(const char *provider, const sw_http_res *res, const char *what, char *err,
                      size_t errlen);

/* A URL-escaped copy of s (caller frees). */
char *sw_http_escape(const char *s);

/* For providers whose exec API answers only when the command's output pipe closes
 * (daytona, morph): the script runs in a subshell writing to a private file; the wrapper
 * waits for that subshell only, then prints and removes the file, so a `cmd &` child holds
 * the file, not the answer. At an interruption, SW_SYNC_COLLECT (a second exec) prints
 * what the file holds so far, pid line included. %s: the file (SW_SYNC_OUTPUT_FILE with a
 * random hex id); the wrapper takes the script as $1. */
#define SW_SYNC_OUTPUT_FILE "/tmp/.shellwire-exec-%s"
#define SW_SYNC_WRAPPER                                                                    \
    "__sw_o=%s; __sw_s=$1; set --; ( eval \"unset __sw_o __sw_s\n$__sw_s\" ) >\"$__sw_o\" "    \
    "2>&1 </dev/null & wait $!; __sw_e=$?; exec 3<\"$__sw_o\"; "                              \
    "rm -f \"$__sw_o\" </dev/null >/dev/null 2>&1 & cat <&3; exit $__sw_e"
#define SW_SYNC_COLLECT "exec </dev/null 2>&1; f=%s; cat \"$f\" 2>/dev/null; rm -f \"$f\""

#endif
