/* server/tools_process.c — the process tool: argument checks, then the registry.
 *
 * A process call sees the effect of every call that arrived before it in its environment
 * (a background start just before a list is listed), but takes no turn itself, so a long
 * `wait` never holds up later commands. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/env.h"
#include "server/registry.h"
#include "server/tools.h"

static json_t *error(const char *msg)
{
    return json_pack("{s:s, s:s}", "error", msg, "status", "error");
}

static const char *task_of(json_t *args)
{
    json_t *jt = json_object_get(args, "task_id");
    if (!jt || json_is_null(jt)) return "default";
    if (!json_is_string(jt) || json_string_length(jt) == 0 ||
        strlen(json_string_value(jt)) != json_string_length(jt))
        return NULL;
    return json_string_value(jt);
}

void sw_process_arrive(sw_req *r, json_t *args)
{
    const char *task = task_of(args);
    if (task) r->tool_env = sw_env_peek_turn(task, &r->tool_turn);
}

json_t *sw_process_call(sw_req *r, json_t *args)
{
    json_t *ja = json_object_get(args, "action");
    if (!ja)
        return error("Missing required argument \"action\" (one of list, poll, log, wait, "
                     "kill, write, submit, close).");
    if (!json_is_string(ja))
        return error("Invalid \"action\": expected a string (one of list, poll, log, wait, "
                     "kill, write, submit, close).");
    const char *task = task_of(args);
    if (!task || !r->tool_env) return error("Invalid \"task_id\": expected a non-empty string.");
    sw_env_wait_before(r->tool_env, r->tool_turn, &r->cancel);
    return sw_reg_action(task, json_string_value(ja), args, &r->cancel);
}
