/* server/output.h — the output pipeline.
 *
 * Turns the raw bytes a command printed (stdout and stderr merged, in arrival order, in
 * chunks of any size and split anywhere) into the text the model sees. It knows nothing of
 * the backend that produced the bytes.
 *
 * Streaming stages, applied to every chunk as it arrives:
 *   1. cwd marker removal: the wrapper script ends with
 *        "\n__SHELLWIRE_CWD_<id>__<path>__SHELLWIRE_CWD_<id>__\n"
 *      which is cut out of the stream (the leading "\n" and trailing "\n" included) and
 *      remembered; the last complete marker wins. A marker may be split across chunks.
 *      An incomplete marker at the end of the stream is passed through as text.
 *   2. UTF-8 repair: invalid bytes become U+FFFD (one per maximal invalid subpart);
 *      characters split across chunks are reassembled.
 *   3. ANSI escape removal (CSI, OSC, DCS/SOS/PM/APC, nF, Fp/Fe/Fs, 8-bit C1 forms),
 *      sequences may be split across chunks. Plain C0 controls (\t \r \n ...) are kept.
 *      The payload of a string sequence (OSC, DCS, SOS, PM, APC, 7- or 8-bit) may be at most
 *      4096 bytes (of the stage-2 output, so a U+FFFD counts 3). A character that would
 *      make it longer abandons the sequence: what it swallowed so far stays dropped, and
 *      that character and everything after it are processed as text again. So an
 *      unterminated string (binary output, a stray "ESC ]") hides at most 4096 bytes.
 *   4. Bounded capture: the first 40 % and a rolling last 60 % of `limit_chars`
 *      characters are kept, so memory is O(limit) for any output size. When the stream
 *      first exceeds the limit, everything so far and everything after it (post stages
 *      1-3) is also written to a private spill file (mode 0600) in `spill_dir`, up to
 *      `spill_max_chars` characters, after which a one-line note says it was capped.
 *
 * Finishing: when total <= limit the text is the whole stream; otherwise head + notice +
 * tail with the notice
 *   "\n\n... [OUTPUT TRUNCATED - {omitted} chars omitted out of {total} total] ...\n\n".
 * Then leading blank lines and trailing whitespace are trimmed. The cut never splits a
 * character. "Characters" are Unicode code points.
 */
#ifndef SW_OUTPUT_H
#define SW_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sw_out sw_out;

typedef struct sw_out_opts {
    size_t limit_chars;       /* result limit; 0 means the default 50,000 */
    const char *marker_id;    /* id inside the cwd marker; NULL: no marker handling */
    const char *spill_dir;    /* where full-output files go; NULL: never spill */
    size_t spill_max_chars;   /* cap of a spill file; 0 means the default 5,000,000 */
    bool keep_whitespace;     /* skip the final trim (process logs keep their lines) */
} sw_out_opts;

typedef struct sw_out_result {
    char *text;               /* final text, valid UTF-8, NUL-terminated; owned */
    size_t text_len;          /* bytes in text (text may contain U+0000) */
    size_t total_chars;       /* characters in the whole stream after stages 1-3 */
    bool truncated;           /* total_chars > limit */
    char *full_output_path;   /* spill file, or NULL; owned */
    char *cwd;                /* path of the last complete marker, or NULL; owned */
} sw_out_result;

/* Returns NULL only when out of memory. Options are copied. */
sw_out *sw_out_new(const sw_out_opts *opts);
void sw_out_feed(sw_out *o, const char *buf, size_t len);
/* The newest non-empty line seen so far (without its newline), for progress messages;
 * at most 200 characters; NULL if none. Caller frees. */
char *sw_out_last_line(const sw_out *o);
/* Flushes pending state and fills *r (caller frees with sw_out_result_free). The
 * sw_out must not be fed afterwards. */
void sw_out_finish(sw_out *o, sw_out_result *r);
void sw_out_free(sw_out *o);
void sw_out_result_free(sw_out_result *r);

/* Removes spill files ("out-*.log") older than max_age_seconds from dir. */
void sw_out_prune_spills(const char *dir, long max_age_seconds);

/* A short explanation of a well-known non-zero exit code of `command` (judged by the base
 * name of the first word of its last pipeline/list segment, skipping VAR=value words),
 * or NULL. Written into buf. */
const char *sw_out_exit_code_meaning(const char *command, int exit_code, char *buf,
                                     size_t buflen);

#endif
