/* server/log.h — diagnostics on stderr (never stdout, which belongs to the protocol). */
#ifndef SW_LOG_H
#define SW_LOG_H

enum sw_log_level { SW_LOG_DEBUG, SW_LOG_INFO, SW_LOG_NOTICE, SW_LOG_WARNING, SW_LOG_ERROR, SW_LOG_OFF };

/* Parses "debug", "info", "notice", "warning", "error", "off"; -1 when unknown. MCP's
 * syslog names (critical, alert, emergency) map to error. */
int sw_log_parse_level(const char *s);
void sw_log_set_level(int level);
void sw_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sw_debug(...) sw_log(SW_LOG_DEBUG, __VA_ARGS__)
#define sw_info(...) sw_log(SW_LOG_INFO, __VA_ARGS__)
#define sw_warn(...) sw_log(SW_LOG_WARNING, __VA_ARGS__)
#define sw_error(...) sw_log(SW_LOG_ERROR, __VA_ARGS__)

#endif
