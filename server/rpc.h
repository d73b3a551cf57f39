/* server/rpc.h — JSON-RPC 2.0 over stdio: line framing, validation, batches, the writer,
 * the worker pool and cancellation. MCP semantics live in server/mcp.c. */
#ifndef SW_RPC_H
#define SW_RPC_H

#include <jansson.h>
#include <stdbool.h>

#include "backends/proc.h"
#include "server/config.h"

enum {
    SW_RPC_PARSE_ERROR = -32700,
    SW_RPC_INVALID_REQUEST = -32600,
    SW_RPC_METHOD_NOT_FOUND = -32601,
    SW_RPC_INVALID_PARAMS = -32602,
    SW_RPC_INTERNAL_ERROR = -32603,
};

struct sw_batch;

/* One request being served. Owned by the rpc layer; handlers answer it exactly once with
 * sw_rpc_reply or sw_rpc_error (a cancelled request's answer is dropped). */
typedef struct sw_req {
    json_t *id;                 /* never NULL for a request */
    const char *method;         /* points into msg */
    json_t *params;             /* object, or NULL */
    json_t *progress_token;     /* params._meta.progressToken, or NULL */
    sw_cancel cancel;           /* fired by notifications/cancelled and shutdown */
    json_t *msg;                /* the whole message */
    struct sw_batch *batch;
    size_t slot;
    bool answered;
    void (*after_reply)(void *);   /* run by the worker after the answer is written */
    void *after_ctx;
    void *tool_env;             /* set on arrival by a tool that needs it (terminal: */
    unsigned long tool_turn;    /* the environment and the turn it took) */
    struct sw_req *next;        /* in-flight list */
    struct sw_req *qnext;       /* worker queue */
} sw_req;

void sw_rpc_reply(sw_req *r, json_t *result);                    /* steals result */
void sw_rpc_error(sw_req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sends a notification (steals params). */
void sw_rpc_notify(const char *method, json_t *params);
/* Sends a request to the client and waits for its answer (the whole response message,
 * caller decrefs), at most timeout_ms or until cancel fires; then it sends
 * notifications/cancelled for it and returns NULL. */
json_t *sw_rpc_request(const char *method, json_t *params, int timeout_ms, sw_cancel *cancel);
/* Fires the cancellation of the in-flight request with this id, if any. */
void sw_rpc_cancel(const json_t *id);

/* Fires the cancellation of every in-flight request (shutdown). */
void sw_rpc_cancel_all(void);

/* Takes the output lock for good (used right before the process exits). */
void sw_rpc_lock_output(void);

/* Serves stdin until EOF; returns after every in-flight call has answered. */
int sw_rpc_serve(const sw_config *cfg);
/* The same loop over other descriptors: requests are read from in_fd until EOF, and every
 * protocol message (answers, notifications, requests to the client) is written to out_fd
 * from then on. For in-process drivers such as the fuzz targets (tests/fuzz); the server
 * itself uses sw_rpc_serve. */
int sw_rpc_serve_fds(const sw_config *cfg, int in_fd, int out_fd);

#endif
