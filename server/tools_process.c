/* server/tools_process.c — the process tool: argument checks, then the registry. */
#include <string.h>

#include "server/registry.h"
#include "server/tools.h"

json_t *sw_process_call(sw_req *r, json_t *args)
{
    json_t *ja = json_object_get(args, "action");
    if (!ja)
        return sw_tool_error(NULL, "Missing required argument \"action\" (one of list, poll, "
                                   "log, wait, kill, write, submit, close).");
    if (!json_is_string(ja))
        return sw_tool_error(NULL, "Invalid \"action\": expected a string (one of list, poll, "
                                   "log, wait, kill, write, submit, close).");
    json_t *jt = json_object_get(args, "task_id");
    const char *task = "default";
    if (jt && !json_is_null(jt)) {
        if (!json_is_string(jt) || json_string_length(jt) == 0)
            return sw_tool_error(NULL, "Invalid \"task_id\": expected a non-empty string.");
        task = json_string_value(jt);
    }
    return sw_reg_action(task, json_string_value(ja), args, &r->cancel);
}
