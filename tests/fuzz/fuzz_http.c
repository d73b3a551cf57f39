/* tests/fuzz/fuzz_http.c — the cloud backends' error-body parser (backends/http.h:
 * sw_http_error_text), the one parse function of backends/http.c, daytona.c, morph.c and
 * modal.c that has a header declaration; the others are static.
 *
 * Input: 2 bytes of HTTP status (big-endian, used modulo 1000), then the response body.
 * Invariants:
 *   - the text is "HTTP <status>: ..." or "HTTP <status> with no error details";
 *   - it has no control characters (it ends up inside one-line messages);
 *   - it is bounded (300 bytes of the provider's text at most);
 *   - it is valid UTF-8 whenever the body is (a JSON body always is, or it is not parsed);
 *     for a body that is not UTF-8 the function makes no promise, and callers that put
 *     the text into JSON must repair it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/http.h"
#include "tests/fuzz/fuzz_util.h"

#define PROVIDER_TEXT_MAX 300

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    long status = ((long)data[0] << 8 | data[1]) % 1000;
    const char *body = (const char *)data + 2;
    size_t n = size - 2;
    /* The body as the HTTP layer keeps it: NUL-terminated. */
    char *copy = malloc(n + 1);
    memcpy(copy, body, n);
    copy[n] = '\0';

    char *t = sw_http_error_text(status, copy, n);
    FUZZ_CHECK(t != NULL, "no error text");
    char prefix[32];
    int pl = snprintf(prefix, sizeof prefix, "HTTP %ld", status);
    size_t tl = strlen(t);
    FUZZ_CHECK(!strncmp(t, prefix, (size_t)pl) &&
                   (!strncmp(t + pl, ": ", 2) || !strcmp(t + pl, " with no error details")),
               "unexpected shape: %s", t);
    for (size_t i = 0; i < tl; i++)
        FUZZ_CHECK((unsigned char)t[i] >= 0x20 && t[i] != 0x7f, "control character 0x%02x in %s",
                   (unsigned char)t[i], t);
    FUZZ_CHECK(tl <= (size_t)pl + 2 + PROVIDER_TEXT_MAX, "error text of %zu bytes", tl);
    if (fuzz_utf8_valid(copy, n))
        FUZZ_CHECK(fuzz_utf8_valid(t, tl), "not valid UTF-8 for a UTF-8 body: %s", t);
    free(t);

    /* No body at all. */
    t = sw_http_error_text(status, NULL, 0);
    FUZZ_CHECK(t && !strncmp(t, prefix, (size_t)pl), "no text for an empty body");
    free(t);
    free(copy);
    return 0;
}
