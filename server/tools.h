/* server/tools.h — the tools this build advertises, in tools/list order. */
#ifndef SW_TOOLS_H
#define SW_TOOLS_H

#include <jansson.h>
#include <stddef.h>

#include "server/mcp.h"
#include "server/rpc.h"

/* Generated from schema/ (see schema/embed.c). */
extern const char sw_schema_terminal[];
extern const char sw_schema_process[];

const sw_tool *sw_tools_all(size_t *n);

/* The terminal tool (server/tools_terminal.c). */
int sw_terminal_init(const sw_config *cfg);
json_t *sw_terminal_call(sw_req *r, json_t *args);
void sw_terminal_arrive(sw_req *r, json_t *args);

/* The process tool (server/tools_process.c). */
json_t *sw_process_call(sw_req *r, json_t *args);
void sw_process_arrive(sw_req *r, json_t *args);

/* The error envelope every tool uses for a failed call (status "error" unless given). */
json_t *sw_tool_error(const char *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
