/* server/mcp.c — MCP lifecycle and tool routing on top of the JSON-RPC layer.
 *
 * Protocol state (negotiated version, client log level) is small and global: stdio
 * carries exactly one session per process. */
#include "server/mcp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "server/env.h"
#include "server/registry.h"
#include "server/log.h"
#include "server/tools.h"
#include "server/util.h"

static const char *versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
#define NVERSIONS (sizeof versions / sizeof versions[0])

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *negotiated;          /* NULL until initialize */
static atomic_int client_level = SW_LOG_NOTICE;
static atomic_bool warned_fixture;
static atomic_bool can_elicit;
static json_t *tools_json;              /* array of tool definitions */
static const sw_tool *tools;
static size_t ntools;

int sw_mcp_init(const sw_config *cfg)
{
    tools = sw_tools_all(&ntools);
    tools_json = json_array();
    for (size_t i = 0; i < ntools; i++) {
        json_error_t e;
        json_t *t = json_loads(tools[i].schema_json, 0, &e);
        if (!json_is_object(t) || !json_is_string(json_object_get(t, "name"))) {
            sw_error("built-in tool schema %zu is invalid: %s", i, e.text);
            return -1;
        }
        json_array_append_new(tools_json, t);
    }
    (void)cfg;
    return 0;
}

json_t *sw_mcp_tools(void) { return tools_json; }

bool sw_mcp_batches_allowed(void)
{
    pthread_mutex_lock(&mu);
    bool ok = negotiated && !strcmp(negotiated, "2025-03-26");
    pthread_mutex_unlock(&mu);
    return ok;
}

bool sw_mcp_client_can_elicit(void) { return atomic_load(&can_elicit); }

void sw_mcp_reset_session(void)
{
    pthread_mutex_lock(&mu);
    negotiated = NULL;
    pthread_mutex_unlock(&mu);
    atomic_store(&client_level, SW_LOG_NOTICE);
    atomic_store(&warned_fixture, false);
    atomic_store(&can_elicit, false);
}

bool sw_mcp_log_enabled(int level) { return level >= atomic_load(&client_level); }

static void do_initialize(sw_req *r)
{
    json_t *pv = r->params ? json_object_get(r->params, "protocolVersion") : NULL;
    if (!json_is_string(pv)) {
        sw_rpc_error(r, SW_RPC_INVALID_PARAMS, "Invalid params: initialize needs \"protocolVersion\" (a string)");
        return;
    }
    const char *chosen = versions[0];
    for (size_t i = 0; i < NVERSIONS; i++)
        if (!strcmp(json_string_value(pv), versions[i])) chosen = versions[i];
    pthread_mutex_lock(&mu);
    negotiated = chosen;
    pthread_mutex_unlock(&mu);
    /* Form elicitation: "elicitation": {} (2025-06-18) or with a "form" member (2025-11-25). */
    json_t *el = json_object_get(json_object_get(r->params, "capabilities"), "elicitation");
    atomic_store(&can_elicit, json_is_object(el) &&
                                  (json_object_size(el) == 0 || json_object_get(el, "form")));
    json_t *ci = json_object_get(r->params, "clientInfo");
    sw_info("client %s %s, protocol %s (asked for %s)",
            json_string_value(json_object_get(ci, "name")) ?: "?",
            json_string_value(json_object_get(ci, "version")) ?: "?", chosen,
            json_string_value(pv));
    sw_rpc_reply(r, json_pack(
        "{s:s, s:{s:{s:b}, s:{}}, s:{s:s, s:s, s:s}, s:s}",
        "protocolVersion", chosen,
        "capabilities", "tools", "listChanged", 0, "logging",
        "serverInfo", "name", "shellwire", "title", "shellwire", "version", SW_VERSION,
        "instructions",
        "shellwire runs shell commands for you: the terminal tool runs one (working "
        "directory, exported variables, functions and aliases persist between calls), and "
        "the process tool follows commands started with background: true."));
}

static void do_tools_list(sw_req *r)
{
    json_t *cursor = r->params ? json_object_get(r->params, "cursor") : NULL;
    if (cursor && !json_is_null(cursor)) {
        sw_rpc_error(r, SW_RPC_INVALID_PARAMS, "Invalid params: unknown cursor (the tool list has one page)");
        return;
    }
    sw_rpc_reply(r, json_pack("{s:O}", "tools", tools_json));
}

static void do_set_level(sw_req *r)
{
    json_t *lv = r->params ? json_object_get(r->params, "level") : NULL;
    static const char *names[] = {"debug", "info", "notice", "warning", "error", "critical",
                                  "alert", "emergency"};
    int level = -1;
    for (size_t i = 0; json_is_string(lv) && i < sizeof names / sizeof *names; i++)
        if (!strcmp(json_string_value(lv), names[i])) level = sw_log_parse_level(names[i]);
    if (level < 0) {
        sw_rpc_error(r, SW_RPC_INVALID_PARAMS, "Invalid params: \"level\" must be one of debug, "
                     "info, notice, warning, error, critical, alert, emergency");
        return;
    }
    atomic_store(&client_level, level);
    sw_rpc_reply(r, json_object());
}

static const sw_tool *find_tool(const char *name)
{
    for (size_t i = 0; i < ntools; i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(tools_json, i), "name")), name))
            return &tools[i];
    return NULL;
}

enum sw_route sw_mcp_request(sw_req *r)
{
    const char *m = r->method;
    if (!strcmp(m, "initialize")) { do_initialize(r); return SW_ROUTE_DONE; }
    if (!strcmp(m, "ping")) { sw_rpc_reply(r, json_object()); return SW_ROUTE_DONE; }
    if (!strcmp(m, "tools/list")) { do_tools_list(r); return SW_ROUTE_DONE; }
    if (!strcmp(m, "logging/setLevel")) { do_set_level(r); return SW_ROUTE_DONE; }
    if (!strcmp(m, "tools/call")) {
        json_t *name = r->params ? json_object_get(r->params, "name") : NULL;
        json_t *args = r->params ? json_object_get(r->params, "arguments") : NULL;
        if (!json_is_string(name)) {
            sw_rpc_error(r, SW_RPC_INVALID_PARAMS, "Invalid params: tools/call needs \"name\" (a string)");
            return SW_ROUTE_DONE;
        }
        if (args && !json_is_object(args) && !json_is_null(args)) {
            sw_rpc_error(r, SW_RPC_INVALID_PARAMS, "Invalid params: \"arguments\" must be an object");
            return SW_ROUTE_DONE;
        }
        const sw_tool *t = find_tool(json_string_value(name));
        if (!t) {
            sw_rpc_error(r, SW_RPC_INVALID_PARAMS, "Unknown tool: %s", json_string_value(name));
            return SW_ROUTE_DONE;
        }
        if (t->arrive) {
            json_t *empty = json_object();
            t->arrive(r, json_is_object(args) ? args : empty);
            json_decref(empty);
        }
        pthread_mutex_lock(&mu);
        bool init = negotiated != NULL;
        pthread_mutex_unlock(&mu);
        if (!init && !atomic_exchange(&warned_fixture, true))
            sw_warn("tools/call before initialize: serving it anyway (fixture mode)");
        return SW_ROUTE_WORKER;
    }
    sw_rpc_error(r, SW_RPC_METHOD_NOT_FOUND, "Method not found: %s", m);
    return SW_ROUTE_DONE;
}

void sw_mcp_work(sw_req *r)
{
    const sw_tool *t = find_tool(json_string_value(json_object_get(r->params, "name")));
    json_t *args = json_object_get(r->params, "arguments");
    json_t *empty = NULL;
    if (!json_is_object(args)) args = empty = json_object();
    json_t *env = t->call(r, args);
    json_decref(empty);
    json_t *err = json_object_get(env, "error");
    bool is_error = json_is_string(err) && json_string_length(err) > 0;
    char *text = json_dumps(env, JSON_COMPACT);
    sw_rpc_reply(r, json_pack("{s:[{s:s, s:s}], s:o, s:b}", "content", "type", "text", "text",
                              text ? text : "{}", "structuredContent", env, "isError", is_error));
    free(text);
}

void sw_mcp_notification(const char *method, json_t *params)
{
    if (!strcmp(method, "notifications/cancelled")) {
        json_t *id = params ? json_object_get(params, "requestId") : NULL;
        if (id) {
            sw_rpc_cancel(id);
            sw_env_wake_waiters();   /* a cancelled call may be waiting for its turn */
            sw_reg_wake_waiters();   /* or in process wait */
        }
    } else if (!strcmp(method, "notifications/initialized")) {
        sw_debug("client initialized");
    } else {
        sw_debug("ignoring notification %s", method);
    }
}
