/* server/config.h — run-time configuration: TERMINAL_* / SHELLWIRE_* environment variables,
 * overridden by command-line flags. Every setting is validated at start; a malformed value
 * stops the server with a message that names the variable or flag. */
#ifndef SW_CONFIG_H
#define SW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct sw_config {
    char *backend;              /* TERMINAL_ENV */
    char *cwd;                  /* TERMINAL_CWD (resolved default for local: server cwd) */
    long timeout_s;             /* TERMINAL_TIMEOUT */
    long max_fg_timeout_s;      /* TERMINAL_MAX_FOREGROUND_TIMEOUT */
    long lifetime_s;            /* TERMINAL_LIFETIME_SECONDS */
    long max_output_chars;      /* SHELLWIRE_MAX_OUTPUT_CHARS */
    long max_line_bytes;        /* SHELLWIRE_MAX_LINE_BYTES */
    long workers;               /* SHELLWIRE_WORKERS */
    long order_wait_s;          /* SHELLWIRE_ORDER_WAIT */
    char *state_dir;            /* SHELLWIRE_STATE_DIR */
    char *log_level;            /* SHELLWIRE_LOG_LEVEL */
    char *pass_env;             /* SHELLWIRE_PASS_ENV: comma-separated names */
    char *bwrap_profile;        /* TERMINAL_BUBBLEWRAP_PROFILE */
    char *approval;             /* SHELLWIRE_APPROVAL: ask, deny or off */
    long redact;                /* SHELLWIRE_REDACT: 1 masks secrets in output */
    char *confine;              /* SHELLWIRE_CONFINE: off, auto, landlock (= require) */
    char *hide_paths;           /* SHELLWIRE_HIDE_PATHS: more paths Landlock hides */
    int print_tools;            /* --print-tools */
    int check;                  /* --check */
    unsigned long from_flag;    /* bit i: option i was given on the command line */
} sw_config;

enum { SW_CONFIG_RUN = 0, SW_CONFIG_EXIT_OK = 1, SW_CONFIG_EXIT_ERR = 2 };

/* Loads from the environment then argv. Returns SW_CONFIG_RUN, or SW_CONFIG_EXIT_OK after
 * printing --help/--version, or SW_CONFIG_EXIT_ERR after printing an error to stderr. */
int sw_config_load(sw_config *cfg, int argc, char **argv);
/* Prints every setting with its value and where it came from; secrets are masked. */
void sw_config_print(const sw_config *cfg, FILE *f);

#endif
