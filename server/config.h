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
    /* ssh */
    char *ssh_host;             /* TERMINAL_SSH_HOST */
    char *ssh_user;             /* TERMINAL_SSH_USER (default: $USER) */
    long ssh_port;              /* TERMINAL_SSH_PORT */
    char *ssh_key;              /* TERMINAL_SSH_KEY: private key file; none: ssh-agent */
    char *ssh_key_passphrase;   /* TERMINAL_SSH_KEY_PASSPHRASE */
    char *known_hosts;          /* SHELLWIRE_KNOWN_HOSTS (default ~/.ssh/known_hosts) */
    /* docker (and the container settings others share) */
    char *docker_image;         /* TERMINAL_DOCKER_IMAGE */
    char *docker_host;          /* DOCKER_HOST (default unix:///var/run/docker.sock) */
    char *docker_volumes;       /* TERMINAL_DOCKER_VOLUMES: comma-separated host:container[:ro] */
    char *docker_env;           /* TERMINAL_DOCKER_ENV: comma-separated NAME=value */
    char *docker_forward_env;   /* TERMINAL_DOCKER_FORWARD_ENV: comma-separated names */
    char *docker_network;       /* TERMINAL_DOCKER_NETWORK: true (default) or false */
    char *container_cpu;        /* TERMINAL_CONTAINER_CPU: CPUs, e.g. 1.5 */
    char *container_memory;     /* TERMINAL_CONTAINER_MEMORY: e.g. 512m, 2g */
    char *container_persistent; /* TERMINAL_CONTAINER_PERSISTENT: true or false (default) */
    /* singularity / apptainer */
    char *singularity_image;    /* TERMINAL_SINGULARITY_IMAGE */
    char *scratch_dir;          /* TERMINAL_SCRATCH_DIR */
    /* cloud sandboxes */
    char *modal_gateway_url;    /* MODAL_GATEWAY_URL */
    char *modal_token;          /* TOOL_GATEWAY_USER_TOKEN */
    char *modal_image;          /* TERMINAL_MODAL_IMAGE */
    char *daytona_api_key;      /* DAYTONA_API_KEY */
    char *daytona_api_url;      /* DAYTONA_API_URL */
    char *daytona_image;        /* TERMINAL_DAYTONA_IMAGE */
    char *daytona_snapshot;     /* TERMINAL_DAYTONA_SNAPSHOT */
    char *morph_api_key;        /* MORPH_API_KEY */
    char *morph_base_url;       /* MORPH_BASE_URL */
    char *morph_snapshot;       /* TERMINAL_MORPH_SNAPSHOT */
    char *approval;             /* SHELLWIRE_APPROVAL: ask, deny or off */
    long approval_timeout_s;    /* SHELLWIRE_APPROVAL_TIMEOUT */
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
