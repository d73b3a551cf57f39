/* tests/fuzz/fuzz_guard.c — the dangerous-command guard (server/guard.h: normalization
 * and matching) and the SUDO_PASSWORD rewrite (server/sudo.h).
 *
 * Input: a command (cut at the first NUL, as the terminal tool refuses NULs anyway).
 * Invariants:
 *   - normalization returns a NUL-terminated string;
 *   - a verdict is one of the three, and a refusal names its rule and description;
 *   - the sudo rewrite only inserts " -S -p ''" after each sudo it counts, so its result is
 *     exactly 9 bytes per counted sudo longer, and removing those insertions gives the
 *     command back; no rewrite means a count of 0.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/guard.h"
#include "server/sudo.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sw_guard_init() < 0) abort();
    return 0;
}

static const char INSERT[] = " -S -p ''";
#define INSERT_LEN (sizeof INSERT - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *cmd = strndup((const char *)data, size);
    size_t n = strlen(cmd);

    char *norm = sw_guard_normalize(cmd);
    FUZZ_CHECK(norm != NULL, "no normalized text");
    (void)strlen(norm);
    free(norm);

    sw_guard_hit h = sw_guard_check(cmd);
    FUZZ_CHECK(h.verdict == SW_GUARD_ALLOW || h.verdict == SW_GUARD_APPROVAL ||
                   h.verdict == SW_GUARD_HARDLINE, "verdict %d", (int)h.verdict);
    if (h.verdict != SW_GUARD_ALLOW)
        FUZZ_CHECK(h.key && *h.key && h.description && *h.description, "refusal without a rule");
    else
        FUZZ_CHECK(!h.key, "allowed with a rule key");

    int count = -1;
    char *rw = sw_sudo_rewrite(cmd, &count);
    if (!rw) {
        FUZZ_CHECK(count == 0, "no rewrite but a count of %d", count);
    } else {
        size_t rn = strlen(rw);
        FUZZ_CHECK(count > 0, "a rewrite with a count of %d", count);
        FUZZ_CHECK(rn == n + INSERT_LEN * (size_t)count, "rewrite is %zu bytes, want %zu + 9 * %d",
                   rn, n, count);
        /* Taking the insertions out again (leftmost first, as many as counted) must give
         * back the command whenever the command itself never contained the insertion. */
        if (!strstr(cmd, INSERT)) {
            char *back = malloc(rn + 1);
            size_t w = 0, removed = 0;
            for (size_t i = 0; i < rn;) {
                if (!strncmp(rw + i, INSERT, INSERT_LEN)) {
                    i += INSERT_LEN;
                    removed++;
                } else {
                    back[w++] = rw[i++];
                }
            }
            back[w] = '\0';
            FUZZ_CHECK(removed == (size_t)count && !strcmp(back, cmd),
                       "the rewrite changed more than the sudo words");
            free(back);
        }
        free(rw);
    }
    (void)sw_sudo_reads_stdin(cmd);     /* no crash; it rewrites internally */
    free(cmd);
    return 0;
}
