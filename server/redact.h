/* server/redact.h — masks well-known secret shapes in command output (API keys, tokens,
 * JWTs, private keys, bearer headers, passwords in URLs). A secret shorter than 18
 * characters becomes "***"; a longer one keeps its first 6 and last 4 characters around
 * "...". Applied to results, saved full outputs, process logs and completion notices. */
#ifndef SW_REDACT_H
#define SW_REDACT_H

#include <stdbool.h>
#include <stddef.h>

/* Turns redaction on or off and, when on, starts compiling the patterns (on a thread;
 * the first redaction waits for it). Returns 0. */
int sw_redact_init(bool enabled);
/* Returns a new string (caller frees) with secrets masked; *outlen gets its length.
 * Returns NULL when nothing was masked (or redaction is off): use the input as it is. */
char *sw_redact(const char *text, size_t len, size_t *outlen);
/* Masks a file in place (rewritten through a temp file and rename). */
void sw_redact_file(const char *path);

#endif
