/* backends/script.h — the shell scripts every backend runs, so that state semantics are
 * the same everywhere.
 *
 * A command runs as one bash script that
 *   1. sources the environment's snapshot (exported variables, functions, aliases),
 *   2. cds to the directory for this call (exit 126 with bash's message if it is gone),
 *   3. evals the command with stdin already /dev/null and PAGER/GIT_PAGER set to cat,
 *   4. saves $?, dumps exported variables, functions and aliases to `snapshot_out`
 *      (when given) using builtins only,
 *   5. prints the cwd marker "\n__SHELLWIRE_CWD_<id>__<dir>__SHELLWIRE_CWD_<id>__\n"
 *      with builtins, and exits with the saved status.
 * With a status fd (local backend) the marker comes before the dump and the exit code
 * is reported on the fd at once, so the caller can answer while the dump is written.
 * The caller publishes the dump (no external `mv` in the script): the local backend renames
 * `snapshot_out` over the snapshot; the remote layer hands the newest dump to the next
 * command.
 */
#ifndef SW_SCRIPT_H
#define SW_SCRIPT_H

#include <stdbool.h>

typedef struct sw_script_opts {
    const char *command;
    const char *cwd;            /* "~" and "~/x" are expanded by the shell running it */
    const char *snapshot;       /* file to source first; NULL when the shell running the
                                   script has loaded it already */
    const char *snapshot_out;   /* where to dump state afterwards; NULL: do not dump */
    const char *marker_id;
    const char *prologue;       /* extra text run first (e.g. "exec 3<&-"); may be NULL */
    const char *stdin_data;     /* the command's stdin instead of /dev/null (a here-string
                                   inside the script, never on a command line); or NULL */
    const char *epilogue;       /* text run after the marker, right before the exit (only
                                   without a status fd); may be NULL */
    int status_fd;              /* > 0: report "S\n" first (the script started), then
                                   "<exit code>\n" right after the marker, and "D\n" once
                                   the state dump is written; the command itself runs with
                                   the fd closed */
} sw_script_opts;

/* The script of a background process: like sw_script_wrap without state dump and marker;
 * writes "<exit code>\n" to exit_path at the end. `term`, if set, is exported as TERM. */
char *sw_script_background(const char *command, const char *stdin_data, const char *cwd,
                           const char *snapshot, const char *exit_path, const char *term,
                           const char *prologue);
/* Returns the script (caller frees). */
char *sw_script_wrap(const sw_script_opts *o);
/* The script that captures the first snapshot from a login shell into `snapshot_tmp`
 * (meant to run as `bash -l -c`). */
char *sw_script_snapshot_init(const char *snapshot_tmp, const char *prologue);
/* Quotes a directory for `cd`, keeping a leading "~" or "~/" expandable. */
char *sw_script_quote_dir(const char *dir);

#endif
