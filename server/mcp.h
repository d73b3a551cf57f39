/* server/mcp.h — the MCP layer: lifecycle (initialize, version negotiation, logging
 * level), tools/list and tools/call routing to the tools, and tool results. */
#ifndef SW_MCP_H
#define SW_MCP_H

#include <jansson.h>
#include <stdbool.h>

#include "server/config.h"
#include "server/rpc.h"

enum sw_route { SW_ROUTE_DONE, SW_ROUTE_WORKER };

/* A tool: its schema file (compiled in) and its handler. The handler returns the result
 * envelope (an object with at least output/error keys); mcp.c wraps it. */
typedef struct sw_tool {
    const char *schema_json;
    json_t *(*call)(sw_req *r, json_t *args);            /* on a worker thread */
    void (*arrive)(sw_req *r, json_t *args);             /* on the reader, in arrival order; may be NULL */
} sw_tool;

int sw_mcp_init(const sw_config *cfg);
/* The advertised tools array (borrowed). */
json_t *sw_mcp_tools(void);
/* Called on the reader thread. SW_ROUTE_WORKER: the rpc layer runs sw_mcp_work(r) on a
 * worker thread; otherwise r has been answered. */
enum sw_route sw_mcp_request(sw_req *r);
void sw_mcp_work(sw_req *r);
void sw_mcp_notification(const char *method, json_t *params);
bool sw_mcp_batches_allowed(void);
/* Whether the client declared the elicitation capability (form mode) in initialize. */
bool sw_mcp_client_can_elicit(void);
/* Whether a notifications/message at this level should be sent now. */
bool sw_mcp_log_enabled(int level);
/* Forgets the session: no protocol version negotiated, default client log level, no
 * client capabilities, as before the first initialize. For in-process drivers that serve
 * several independent sessions in one process (the fuzz targets); never used by the
 * server. */
void sw_mcp_reset_session(void);

#endif
