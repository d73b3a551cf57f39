/* server/config.c — one table drives environment variables, flags, defaults, validation
 * and the --help text, so they cannot drift apart. */
#include "server/config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "server/childenv.h"
#include "server/log.h"
#include "server/util.h"

enum kind { K_STR, K_INT };

struct opt {
    const char *flag;       /* without the leading "--" */
    const char *env;
    enum kind kind;
    size_t off;
    long min, max;
    const char *help;
};

#define OFF(f) offsetof(sw_config, f)
static const struct opt opts[] = {
    {"backend", "TERMINAL_ENV", K_STR, OFF(backend), 0, 0,
     "execution backend: local (default), ssh, docker, singularity, bubblewrap, modal, daytona, morph"},
    {"cwd", "TERMINAL_CWD", K_STR, OFF(cwd), 0, 0,
     "starting working directory of each environment (local default: the server's cwd)"},
    {"timeout", "TERMINAL_TIMEOUT", K_INT, OFF(timeout_s), 1, 86400,
     "default foreground timeout in seconds (180)"},
    {"max-foreground-timeout", "TERMINAL_MAX_FOREGROUND_TIMEOUT", K_INT, OFF(max_fg_timeout_s), 1, 86400,
     "largest timeout a foreground call may ask for, in seconds (600)"},
    {"lifetime", "TERMINAL_LIFETIME_SECONDS", K_INT, OFF(lifetime_s), 1, 31536000,
     "idle seconds before an environment is released (300)"},
    {"max-output-chars", "SHELLWIRE_MAX_OUTPUT_CHARS", K_INT, OFF(max_output_chars), 100, 100000000,
     "characters of output in one result before head/tail truncation (50000)"},
    {"max-line-bytes", "SHELLWIRE_MAX_LINE_BYTES", K_INT, OFF(max_line_bytes), 1024, 1073741824,
     "longest accepted JSON-RPC input line in bytes (16777216)"},
    {"workers", "SHELLWIRE_WORKERS", K_INT, OFF(workers), 1, 1024,
     "tool calls that run at the same time; more wait in a queue (64)"},
    {"order-wait", "SHELLWIRE_ORDER_WAIT", K_INT, OFF(order_wait_s), 0, 86400,
     "seconds a call waits for earlier calls in its environment to finish before running alongside them (10)"},
    {"state-dir", "SHELLWIRE_STATE_DIR", K_STR, OFF(state_dir), 0, 0,
     "directory for saved outputs and state (default $XDG_STATE_HOME/shellwire)"},
    {"log-level", "SHELLWIRE_LOG_LEVEL", K_STR, OFF(log_level), 0, 0,
     "stderr log level: debug, info, notice, warning (default), error, off"},
    {"pass-env", "SHELLWIRE_PASS_ENV", K_STR, OFF(pass_env), 0, 0,
     "comma-separated variable names passed to commands even if they look like secrets"},
    {"redact", "SHELLWIRE_REDACT", K_INT, OFF(redact), 0, 1,
     "1 (default) masks API keys, tokens and passwords in output; 0 shows them"},
    {"confine", "SHELLWIRE_CONFINE", K_STR, OFF(confine), 0, 0,
     "local backend: off (default), landlock or require (confine, refuse commands without Landlock), auto (confine when the kernel can)"},
    {"hide-paths", "SHELLWIRE_HIDE_PATHS", K_STR, OFF(hide_paths), 0, 0,
     "comma-separated files or directories that confined commands cannot read (besides the state directory)"},
    {"approval", "SHELLWIRE_APPROVAL", K_STR, OFF(approval), 0, 0,
     "commands that need approval: ask (default: refuse with instructions), deny, off (run them)"},
    {"approval-timeout", "SHELLWIRE_APPROVAL_TIMEOUT", K_INT, OFF(approval_timeout_s), 1, 86400,
     "seconds an approval question waits for the user's answer before the command is refused (300)"},
    {"bubblewrap-profile", "TERMINAL_BUBBLEWRAP_PROFILE", K_STR, OFF(bwrap_profile), 0, 0,
     "bubblewrap backend: restricted, workspace (default) or network"},
    {"ssh-host", "TERMINAL_SSH_HOST", K_STR, OFF(ssh_host), 0, 0, "ssh backend: host name or address"},
    {"ssh-user", "TERMINAL_SSH_USER", K_STR, OFF(ssh_user), 0, 0, "ssh backend: user name (default: $USER)"},
    {"ssh-port", "TERMINAL_SSH_PORT", K_INT, OFF(ssh_port), 1, 65535, "ssh backend: port (22)"},
    {"ssh-key", "TERMINAL_SSH_KEY", K_STR, OFF(ssh_key), 0, 0,
     "ssh backend: private key file (default: ask ssh-agent)"},
    {"ssh-key-passphrase", "TERMINAL_SSH_KEY_PASSPHRASE", K_STR, OFF(ssh_key_passphrase), 0, 0,
     "ssh backend: passphrase of an encrypted key (prefer the variable)"},
    {"known-hosts", "SHELLWIRE_KNOWN_HOSTS", K_STR, OFF(known_hosts), 0, 0,
     "ssh backend: known hosts file (default ~/.ssh/known_hosts); new hosts are added, changed keys refused"},
    {"image", "TERMINAL_DOCKER_IMAGE", K_STR, OFF(docker_image), 0, 0, "docker backend: image"},
    {"docker-host", "DOCKER_HOST", K_STR, OFF(docker_host), 0, 0,
     "docker backend: daemon address, unix:///path or tcp://host:port (default unix:///var/run/docker.sock)"},
    {"docker-volumes", "TERMINAL_DOCKER_VOLUMES", K_STR, OFF(docker_volumes), 0, 0,
     "docker backend: comma-separated host:container[:ro] bind mounts"},
    {"docker-env", "TERMINAL_DOCKER_ENV", K_STR, OFF(docker_env), 0, 0,
     "docker backend: comma-separated NAME=value set in the container"},
    {"docker-forward-env", "TERMINAL_DOCKER_FORWARD_ENV", K_STR, OFF(docker_forward_env), 0, 0,
     "docker backend: comma-separated names whose values are copied from the server's environment"},
    {"docker-network", "TERMINAL_DOCKER_NETWORK", K_STR, OFF(docker_network), 0, 0,
     "docker backend: true (default) or false (no network)"},
    {"container-cpu", "TERMINAL_CONTAINER_CPU", K_STR, OFF(container_cpu), 0, 0,
     "container backends: CPU limit, e.g. 1.5"},
    {"container-memory", "TERMINAL_CONTAINER_MEMORY", K_STR, OFF(container_memory), 0, 0,
     "container backends: memory limit, e.g. 512m or 2g"},
    {"container-persistent", "TERMINAL_CONTAINER_PERSISTENT", K_STR, OFF(container_persistent), 0, 0,
     "container and cloud backends: true keeps sandboxes after the server exits (default false)"},
    {"singularity-image", "TERMINAL_SINGULARITY_IMAGE", K_STR, OFF(singularity_image), 0, 0,
     "singularity backend: image (a SIF file, or docker://... built once into a cached SIF)"},
    {"scratch-dir", "TERMINAL_SCRATCH_DIR", K_STR, OFF(scratch_dir), 0, 0,
     "singularity backend: directory for built images (default: APPTAINER_CACHEDIR or the state directory)"},
    {"modal-gateway-url", "MODAL_GATEWAY_URL", K_STR, OFF(modal_gateway_url), 0, 0,
     "modal backend: tool gateway base URL"},
    {"modal-token", "TOOL_GATEWAY_USER_TOKEN", K_STR, OFF(modal_token), 0, 0,
     "modal backend: gateway token (prefer the variable)"},
    {"modal-image", "TERMINAL_MODAL_IMAGE", K_STR, OFF(modal_image), 0, 0, "modal backend: image"},
    {"daytona-api-key", "DAYTONA_API_KEY", K_STR, OFF(daytona_api_key), 0, 0,
     "daytona backend: API key (prefer the variable)"},
    {"daytona-api-url", "DAYTONA_API_URL", K_STR, OFF(daytona_api_url), 0, 0,
     "daytona backend: API base URL (default https://app.daytona.io/api)"},
    {"daytona-image", "TERMINAL_DAYTONA_IMAGE", K_STR, OFF(daytona_image), 0, 0,
     "daytona backend: image to build the sandbox from"},
    {"daytona-snapshot", "TERMINAL_DAYTONA_SNAPSHOT", K_STR, OFF(daytona_snapshot), 0, 0,
     "daytona backend: snapshot to create the sandbox from (instead of an image)"},
    {"morph-api-key", "MORPH_API_KEY", K_STR, OFF(morph_api_key), 0, 0,
     "morph backend: API key (prefer the variable)"},
    {"morph-base-url", "MORPH_BASE_URL", K_STR, OFF(morph_base_url), 0, 0,
     "morph backend: API base URL (default https://cloud.morph.so/api)"},
    {"morph-snapshot", "TERMINAL_MORPH_SNAPSHOT", K_STR, OFF(morph_snapshot), 0, 0,
     "morph backend: snapshot id to start instances from"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static const char *known_backends[] = {"local", "ssh", "docker", "singularity", "bubblewrap",
                                       "modal", "daytona", "morph"};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shellwire [options]\n"
            "A stdio MCP server that gives LLM clients a shell (tools: terminal).\n"
            "Speaks newline-delimited JSON-RPC 2.0 on stdin/stdout; logs go to stderr.\n\n"
            "options (each also settable through the environment variable shown):\n");
    for (size_t i = 0; i < NOPTS; i++)
        fprintf(f, "  --%-24s %s\n  %-26s [%s]\n", opts[i].flag, opts[i].help, "", opts[i].env);
    fprintf(f, "  --%-24s %s\n", "print-tools", "print the advertised tool list as JSON and exit");
    fprintf(f, "  --%-24s %s\n", "check", "check the backend works, print the configuration, and exit");
    fprintf(f, "  --%-24s %s\n", "help", "show this help");
    fprintf(f, "  --%-24s %s\n", "version", "print the version");
}

static int set_value(sw_config *cfg, const struct opt *o, const char *val, const char *source)
{
    if (o->kind == K_STR) {
        char **dst = (char **)((char *)cfg + o->off);
        if (*val == '\0') {
            fprintf(stderr, "shellwire: %s must not be empty\n", source);
            return -1;
        }
        free(*dst);
        *dst = sw_strdup(val);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end != '\0') {
        fprintf(stderr, "shellwire: %s must be an integer, got '%s'\n", source, val);
        return -1;
    }
    if (v < o->min || v > o->max) {
        fprintf(stderr, "shellwire: %s must be between %ld and %ld, got %ld\n", source, o->min,
                o->max, v);
        return -1;
    }
    *(long *)((char *)cfg + o->off) = v;
    return 0;
}

static void defaults(sw_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->backend = sw_strdup("local");
    cfg->timeout_s = 180;
    cfg->max_fg_timeout_s = 600;
    cfg->lifetime_s = 300;
    cfg->max_output_chars = 50000;
    cfg->max_line_bytes = 16 * 1024 * 1024;
    cfg->workers = 64;
    cfg->order_wait_s = 10;
    cfg->log_level = sw_strdup("warning");
    cfg->pass_env = sw_strdup("");
    cfg->bwrap_profile = sw_strdup("workspace");
    cfg->approval = sw_strdup("ask");
    cfg->approval_timeout_s = 300;
    cfg->redact = 1;
    cfg->confine = sw_strdup("off");
    cfg->hide_paths = sw_strdup("");
    cfg->ssh_port = 22;
    cfg->docker_network = sw_strdup("true");
    cfg->container_persistent = sw_strdup("false");
}

static int check_bool(const char *v, const char *what)
{
    if (!strcmp(v, "true") || !strcmp(v, "false")) return 0;
    fprintf(stderr, "shellwire: %s must be true or false, got '%s'\n", what, v);
    return -1;
}

static int finish(sw_config *cfg)
{
    if (!cfg->ssh_user && getenv("USER") && *getenv("USER")) cfg->ssh_user = sw_strdup(getenv("USER"));
    int known = 0;
    for (size_t i = 0; i < sizeof known_backends / sizeof *known_backends; i++)
        if (!strcmp(cfg->backend, known_backends[i])) known = 1;
    if (!known) {
        fprintf(stderr,
                "shellwire: TERMINAL_ENV/--backend: unknown backend '%s' (expected local, ssh, "
                "docker, singularity, bubblewrap, modal, daytona or morph)\n",
                cfg->backend);
        return -1;
    }
    if (!sw_backend_find(cfg->backend)) {
        fprintf(stderr, "shellwire: TERMINAL_ENV/--backend: the '%s' backend is not available "
                        "in this build yet; use 'local'\n", cfg->backend);
        return -1;
    }
    const sw_backend_ops *ops = sw_backend_find(cfg->backend);
    char berr[512];
    if (ops->check_config && ops->check_config(cfg, berr, sizeof berr) < 0) {
        fprintf(stderr, "shellwire: %s\n", berr);
        return -1;
    }
    if (strcmp(cfg->bwrap_profile, "restricted") && strcmp(cfg->bwrap_profile, "workspace") &&
        strcmp(cfg->bwrap_profile, "network")) {
        fprintf(stderr, "shellwire: TERMINAL_BUBBLEWRAP_PROFILE/--bubblewrap-profile: unknown "
                        "profile '%s' (expected restricted, workspace or network)\n",
                cfg->bwrap_profile);
        return -1;
    }
    if (strcmp(cfg->confine, "off") && strcmp(cfg->confine, "landlock") &&
        strcmp(cfg->confine, "require") && strcmp(cfg->confine, "auto")) {
        fprintf(stderr, "shellwire: SHELLWIRE_CONFINE/--confine: unknown value '%s' (expected "
                        "off, auto, landlock or require)\n", cfg->confine);
        return -1;
    }
    if (strcmp(cfg->approval, "ask") && strcmp(cfg->approval, "deny") && strcmp(cfg->approval, "off")) {
        fprintf(stderr, "shellwire: SHELLWIRE_APPROVAL/--approval: unknown mode '%s' (expected "
                        "ask, deny or off)\n", cfg->approval);
        return -1;
    }
    if (sw_log_parse_level(cfg->log_level) < 0) {
        fprintf(stderr, "shellwire: SHELLWIRE_LOG_LEVEL/--log-level: unknown level '%s'\n",
                cfg->log_level);
        return -1;
    }
    if (cfg->timeout_s > cfg->max_fg_timeout_s) {
        fprintf(stderr, "shellwire: TERMINAL_TIMEOUT (%ld) must not exceed "
                        "TERMINAL_MAX_FOREGROUND_TIMEOUT (%ld)\n",
                cfg->timeout_s, cfg->max_fg_timeout_s);
        return -1;
    }
    if (check_bool(cfg->docker_network, "TERMINAL_DOCKER_NETWORK/--docker-network") < 0 ||
        check_bool(cfg->container_persistent, "TERMINAL_CONTAINER_PERSISTENT/--container-persistent") < 0)
        return -1;
    if (!cfg->cwd && (!strcmp(cfg->backend, "local") || !strcmp(cfg->backend, "bubblewrap"))) {
        char *wd = getcwd(NULL, 0);
        cfg->cwd = wd ? wd : sw_strdup("/");
    } else if (!cfg->cwd) {
        /* A remote shell starts at home; a container never sees this host's paths. */
        const char *d = "/root";
        /* A remote shell starts at home; so does Daytona's sandbox user, who cannot enter
         * /root. */
        if (!strcmp(cfg->backend, "ssh") || !strcmp(cfg->backend, "daytona")) d = "~";
        /* Apptainer runs as the server's user, who cannot enter the image's /root. */
        else if (!strcmp(cfg->backend, "singularity") && geteuid() != 0) d = "/tmp";
        cfg->cwd = sw_strdup(d);
    } else if (cfg->cwd[0] != '/' && cfg->cwd[0] != '~') {
        fprintf(stderr, "shellwire: TERMINAL_CWD/--cwd must be an absolute path, got '%s'\n",
                cfg->cwd);
        return -1;
    }
    if (!cfg->state_dir) {
        const char *xdg = getenv("XDG_STATE_HOME");
        const char *home = getenv("HOME");
        if (xdg && xdg[0] == '/') cfg->state_dir = sw_printf("%s/shellwire", xdg);
        else if (home && home[0] == '/') cfg->state_dir = sw_printf("%s/.local/state/shellwire", home);
        else cfg->state_dir = sw_printf("/tmp/shellwire-%ld", (long)getuid());
    } else if (cfg->state_dir[0] != '/') {
        fprintf(stderr, "shellwire: SHELLWIRE_STATE_DIR/--state-dir must be an absolute path, "
                        "got '%s'\n", cfg->state_dir);
        return -1;
    }
    return 0;
}

int sw_config_load(sw_config *cfg, int argc, char **argv)
{
    defaults(cfg);
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = getenv(opts[i].env);
        if (v && set_value(cfg, &opts[i], v, opts[i].env) < 0) return SW_CONFIG_EXIT_ERR;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) { usage(stdout); return SW_CONFIG_EXIT_OK; }
        if (!strcmp(arg, "--version") || !strcmp(arg, "-V")) {
            printf("shellwire %s\n", SW_VERSION);
            return SW_CONFIG_EXIT_OK;
        }
        if (!strcmp(arg, "--print-tools")) { cfg->print_tools = 1; continue; }
        if (!strcmp(arg, "--check")) { cfg->check = 1; continue; }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "shellwire: unexpected argument '%s' (see --help)\n", arg);
            return SW_CONFIG_EXIT_ERR;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = NULL;
        for (size_t i = 0; i < NOPTS; i++)
            if (strlen(opts[i].flag) == nlen && !strncmp(opts[i].flag, name, nlen)) o = &opts[i];
        if (!o) {
            fprintf(stderr, "shellwire: unknown option '%.*s' (see --help)\n", (int)nlen + 2, arg);
            return SW_CONFIG_EXIT_ERR;
        }
        const char *val = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (!val) {
            fprintf(stderr, "shellwire: option --%s needs a value\n", o->flag);
            return SW_CONFIG_EXIT_ERR;
        }
        char src[64];
        snprintf(src, sizeof src, "--%s", o->flag);
        if (set_value(cfg, o, val, src) < 0) return SW_CONFIG_EXIT_ERR;
        cfg->from_flag |= 1UL << (o - opts);
    }
    return finish(cfg) < 0 ? SW_CONFIG_EXIT_ERR : SW_CONFIG_RUN;
}

void sw_config_print(const sw_config *cfg, FILE *f)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        const char *src = cfg->from_flag & (1UL << i) ? "flag" : getenv(o->env) ? "environment" : "default";
        if (o->kind == K_STR) {
            const char *v = *(char *const *)((const char *)cfg + o->off);
            bool secret = sw_childenv_is_secret(o->env, strlen(o->env));
            fprintf(f, "  %-32s %s  (%s)\n", o->env, secret ? "***" : v && *v ? v : "(empty)", src);
        } else {
            fprintf(f, "  %-32s %ld  (%s)\n", o->env, *(const long *)((const char *)cfg + o->off), src);
        }
    }
}
