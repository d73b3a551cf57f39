/* backends/docker.c — the docker transport: one long-lived container per environment,
 * driven through the Docker Engine API (libcurl + jansson; no docker CLI). Podman's
 * Docker-compatible socket works the same way: only fields both understand are used.
 *
 * Daemon: DOCKER_HOST, unix:///path (default /var/run/docker.sock) or tcp://host:port.
 * The API version is the daemon's own (from /_ping), capped at the one this file was
 * written against.
 *
 * Container: the image's entrypoint is replaced by a keeper (`sleep` with a count that
 * coreutils and busybox both accept) under an init that reaps orphans. It runs hardened:
 * every capability dropped except the few a root shell needs for ordinary work (CAPS),
 * no-new-privileges, a pids limit, optional CPU/memory limits, a tmpfs /tmp, no network
 * when asked, the configured bind mounts and environment (forwarded values only ever in
 * the container's configuration, never in a command). Labels name this server (host,
 * boot, pid namespace, pid and its start time) and the task, so that a later server can
 * tell the containers of a crashed one from those of a live one and remove them (once,
 * at its first connect). A persistent container (TERMINAL_CONTAINER_PERSISTENT=true) is
 * left running at close and reused by the next server for the same task and image;
 * otherwise close stops and removes it.
 *
 * Commands: starting a process in a container (exec create + start) costs the daemon and
 * the runtime tens of milliseconds, and the daemon starts one at a time. So a script does
 * not get an exec of its own: it goes to a *dispatcher*, a small bash loop running as an
 * attached exec, over the stdin of the exec's hijacked connection. The dispatcher runs it
 * as `bash /dev/stdin` (a real process with its own pid, stderr merged into stdout, the
 * script never on a command line) and then writes an end report with a per-script nonce
 * and the exit status after the output; if some process left by the script still holds
 * the output stream, the report says so and the dispatcher exits, so that output written
 * later never shows up in another script's answer. Otherwise it waits for the next
 * script. Dispatchers ("slots") are pooled per environment; concurrent scripts use
 * several. The exec stream is decoded as it arrives (backends/docker_stream.h). A
 * deadline, a cancellation or out() asking to stop ends the wait at once; a slot stopped
 * by out() has the rest of its report read when it is next used, one stopped otherwise is
 * closed (the process inside is left to the caller to kill). One more exec per container,
 * the lifeline, stops the container when this server goes away without closing it.
 *
 * Failures: daemon unreachable or 5xx → SW_TR_DEGRADED; the container removed or no longer
 * running → SW_TR_GONE, and recreate starts it again if it still exists (its /tmp is
 * fresh either way) or creates a new one; what the daemon refuses for good (an image that
 * is missing and cannot be pulled in time, bad limits or mounts) → SW_TR_ERROR. */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/docker_stream.h"
#include "backends/remote.h"
#include "server/config.h"
#include "server/log.h"
#include "server/util.h"

#define DEFAULT_HOST "unix:///var/run/docker.sock"
#define API_MAX_MINOR 41          /* API 1.41 */
#define API_MIN_MINOR 25          /* Init and NanoCpus */
#define CONNECT_MS 5000           /* establishing one connection to the daemon */
#define CTL_MS 30000              /* ceiling on one control request */
#define STOP_MS 2000              /* close: the stop request */
#define CLOSE_MS 3000             /* close: stop and remove together */
#define DRAIN_MS 2000             /* a reused slot finishing its previous report */
#define BODY_MAX (8 * 1024 * 1024)
#define READ_CHUNK (64 * 1024)
#define CTL_POOL 8                /* idle control handles kept */
#define SLOT_POOL 4               /* idle dispatchers kept */
#define PIDS_LIMIT 4096
#define MIN_MEMORY (6LL * 1024 * 1024)
#define KEEPER_SECONDS "2147483647"
#define LABEL "io.shellwire."
#define DONE_TAG "__SW_DONE_"
#define START_TAG "__SW_START__"

/* Capabilities kept: CHOWN, DAC_OVERRIDE, FOWNER, FSETID for package managers and
 * archives that set owners and modes; SETUID/SETGID for dropping to another user (apt's
 * sandbox user, su to a test user); KILL for signalling processes of other users in the
 * container (the kill scripts run as root); NET_BIND_SERVICE for servers on low ports.
 * Docker's default set also has MKNOD, NET_RAW, SETFCAP, SETPCAP, SYS_CHROOT and
 * AUDIT_WRITE, which a shell for an agent does not need. */
static const char *const CAPS[] = {
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "KILL", "NET_BIND_SERVICE",
};

/* The dispatcher (see the top of the file). A script arrives as "<length> <tag>\n" and
 * the script's bytes; the length is read in bytes whatever the container's locale. The
 * end report "__SW_DONE_<tag>__ <status> <busy>\n" follows the script's output on stdout
 * itself: the daemon copies stdout and stderr independently, so only the same stream
 * keeps the order. Its stderr carries nothing but "__SW_START__" (fd 3, which scripts do
 * not inherit; the rest goes to /dev/null, where an image's broken locale settings make
 * bash warn). SHLVL is lowered so that a script sees what `bash -c` run by the exec
 * itself would. The check for leftover holders of the output compares every open fd in
 * the container with its own stdout (`-ef`: the same pipe). */
static const char DISPATCHER[] =
    "exec 3>&2 2>/dev/null; SHLVL=$((SHLVL - 1))\n"
    "__sw_read() { local LC_ALL=C; IFS= read -r -N \"$1\" __sw_s; }\n"
    "while IFS=' ' read -r __sw_n __sw_t && __sw_read \"$__sw_n\"; do\n"
    "  printf '" START_TAG "\\n' >&3\n"
    "  bash /dev/stdin <<<\"$__sw_s\" 2>&1 3>&-\n"
    "  __sw_ec=$? __sw_busy=0\n"
    "  for __sw_f in /proc/[0-9]*/fd/*; do\n"
    "    case $__sw_f in /proc/$$/*) continue;; esac\n"
    "    [ \"$__sw_f\" -ef /proc/$$/fd/1 ] && { __sw_busy=1; break; }\n"
    "  done\n"
    "  printf '" DONE_TAG "%s__ %s %s\\n' \"$__sw_t\" \"$__sw_ec\" \"$__sw_busy\"\n"
    "  [ \"$__sw_busy\" = 0 ] || exit 0\n"
    "done\n";

/* The lifeline: an exec whose stdin is a connection this server holds open. When the
 * connection closes (server exit, crash, kill -9) the read returns and the container's
 * init is told to stop, which ends every process in it; the stopped container is removed
 * by close, or by the next server's sweep. */
static const char LIFELINE[] = "read -r _; kill -TERM 1";

/* ---- identity of this server (labels) ----------------------------------------------- */

typedef struct ident {
    char host[256];
    char boot[64];
    char pidns[64];
    char pid[24];
    char start[32];
} ident;

static ident g_me;
static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_sweep_mu = PTHREAD_MUTEX_INITIALIZER;
static bool g_swept;

static void read_line(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f) return;
    if (fgets(out, (int)n, f)) out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

static void init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (gethostname(g_me.host, sizeof g_me.host - 1) < 0) strcpy(g_me.host, "unknown");
    read_line("/proc/sys/kernel/random/boot_id", g_me.boot, sizeof g_me.boot);
    ssize_t r = readlink("/proc/self/ns/pid", g_me.pidns, sizeof g_me.pidns - 1);
    g_me.pidns[r > 0 ? r : 0] = '\0';
    snprintf(g_me.pid, sizeof g_me.pid, "%ld", (long)getpid());
    snprintf(g_me.start, sizeof g_me.start, "%llu", sw_proc_start_time(getpid()));
}

/* ---- the transport ------------------------------------------------------------------ */

typedef struct slot slot;

struct sw_transport {
    char *host;                 /* DOCKER_HOST as configured, for messages */
    char *sock;                 /* unix socket path, or NULL for tcp */
    char *base;                 /* "http://localhost/v1.41" */
    struct curl_slist *headers;
    char *image;
    char *task;
    bool persistent;
    int connect_ms;             /* budget of connect and recreate */
    json_t *spec;               /* the container create body */
    pthread_mutex_t mu;         /* everything below */
    char *id;                   /* the container */
    unsigned long gen;          /* bumped whenever the container changes */
    CURL *ctl[CTL_POOL];        /* idle handles for control requests (kept-alive connections) */
    size_t nctl;
    slot *idle;                 /* idle dispatchers */
    size_t nidle;
    slot *lifeline;             /* non-persistent containers only */
    pthread_mutex_t recreate_mu;
};

static char *current_id(sw_transport *t, unsigned long *gen)
{
    pthread_mutex_lock(&t->mu);
    char *id = sw_strdup(t->id);
    if (gen) *gen = t->gen;
    pthread_mutex_unlock(&t->mu);
    return id;
}

/* Sockets close-on-exec, so no command the server starts inherits a daemon connection. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)ud;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Options every handle to the daemon shares. */
static void common_opts(sw_transport *t, CURL *e, const char *url)
{
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (t->sock) curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, t->sock);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_MS);
}

/* ---- control requests ---------------------------------------------------------------- */

typedef struct reply {
    long status;                /* 0: no answer */
    char *body;                 /* NUL-terminated, owned */
    size_t len, cap;
    char api_version[16];
} reply;

static void reply_free(reply *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    reply *r = ud;
    size_t len = size * n, take = r->len + len > BODY_MAX ? BODY_MAX - r->len : len;
    if (r->len + take + 1 > r->cap) {
        r->cap = (r->len + take + 1) * 2;
        r->body = sw_xrealloc(r->body, r->cap);
    }
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    reply *r = ud;
    size_t len = size * n;
    static const char name[] = "api-version:";
    if (len > sizeof name && !strncasecmp(p, name, sizeof name - 1)) {
        const char *v = p + sizeof name - 1, *end = p + len;
        while (v < end && *v == ' ') v++;
        size_t vl = 0;
        while (v + vl < end && v[vl] != '\r' && v[vl] != '\n') vl++;
        if (vl >= sizeof r->api_version) vl = sizeof r->api_version - 1;
        memcpy(r->api_version, v, vl);
        r->api_version[vl] = '\0';
    }
    return len;
}

/* One request; path is appended to the base URL (versioned after connect). Body JSON is
 * stolen. SW_TR_OK when an answer arrived (any status), else SW_TR_DEGRADED with err. */
static int request(sw_transport *t, const char *method, const char *path, json_t *body, int timeout_ms,
                   reply *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_lock(&t->mu);
    CURL *e = t->nctl ? t->ctl[--t->nctl] : NULL;
    pthread_mutex_unlock(&t->mu);
    if (!e && !(e = curl_easy_init())) abort();
    char *url = sw_printf("%s%s", t->base, path);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_reset(e);
    common_opts(t, e, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 1));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, text ? text : "");
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    free(text);
    free(url);
    pthread_mutex_lock(&t->mu);
    if (t->nctl < CTL_POOL) t->ctl[t->nctl++] = e, e = NULL;
    pthread_mutex_unlock(&t->mu);
    curl_easy_cleanup(e);
    if (cc == CURLE_OK && r->status > 0) return SW_TR_OK;
    if (cc == CURLE_OPERATION_TIMEDOUT)
        snprintf(err, errlen, "the Docker daemon at %s did not answer within %d s", t->host, (timeout_ms + 999) / 1000);
    else
        snprintf(err, errlen, "cannot reach the Docker daemon at %s: %s (is it running? DOCKER_HOST selects "
                              "the daemon)", t->host, cerr[0] ? cerr : curl_easy_strerror(cc));
    r->status = 0;
    return SW_TR_DEGRADED;
}

/* The daemon's error message (Docker and Podman both send {"message": ...}). Owned. */
static char *daemon_message(const reply *r)
{
    json_t *j = r->body ? json_loads(r->body, 0, NULL) : NULL;
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    char *s = m ? sw_strdup(m) : sw_printf("HTTP %ld%s%.200s", r->status, r->len ? ": " : "", r->len ? r->body : "");
    json_decref(j);
    s[strcspn(s, "\r\n")] = '\0';
    return s;
}

/* request() for a JSON answer: *out (owned) is the parsed body of a 2xx answer, else NULL
 * with err holding the daemon's message. */
static int control_json(sw_transport *t, const char *method, const char *path, json_t *body,
                        int timeout_ms, long *status, json_t **out, char *err, size_t errlen)
{
    reply r;
    int rc = request(t, method, path, body, timeout_ms, &r, err, errlen);
    *status = r.status;
    *out = NULL;
    if (rc == SW_TR_OK && r.status >= 400) {
        char *m = daemon_message(&r);
        snprintf(err, errlen, "%s", m);
        free(m);
    } else if (rc == SW_TR_OK && r.body) {
        *out = json_loads(r.body, 0, NULL);
    }
    reply_free(&r);
    return rc;
}

static char *url_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    if (!e) abort();
    char *r = sw_strdup(e);
    curl_free(e);
    return r;
}

/* ---- configuration → container spec ------------------------------------------------- */

/* An environment variable name. */
static bool valid_name(const char *s, size_t n)
{
    if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return false;
    return true;
}

/* The next comma-separated item of *s, blanks trimmed; NULL at the end. Owned. */
static char *next_item(const char **s)
{
    while (**s == ',' || **s == ' ' || **s == '\t') (*s)++;
    if (!**s) return NULL;
    const char *start = *s, *end = start + strcspn(start, ",");
    *s = end;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
    char *item = sw_xmalloc((size_t)(end - start) + 1);
    memcpy(item, start, (size_t)(end - start));
    item[end - start] = '\0';
    return item;
}

/* "512m", "2g", "1.5G", "1073741824", "300mb" → bytes (1024-based units); -1 if malformed. */
static long long parse_memory(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v <= 0 || !isdigit((unsigned char)s[0])) return -1;
    double mult = 1;
    char u = (char)tolower((unsigned char)*end);
    if (u && strchr("bkmgt", u)) {
        static const char units[] = "bkmgt";
        for (const char *x = units; *x != u; x++) mult *= 1024;
        end++;
        if (u != 'b' && (*end == 'b' || *end == 'B')) end++;
    }
    if (*end || v * mult > 9.0e18) return -1;
    return (long long)(v * mult);
}

static int add_limits(json_t *hc, const sw_config *cfg, char *err, size_t errlen)
{
    const char *mem = cfg->container_memory, *cpu = cfg->container_cpu;
    if (mem && *mem) {
        long long bytes = parse_memory(mem);
        if (bytes < 0) {
            snprintf(err, errlen, "TERMINAL_CONTAINER_MEMORY: '%s' is not a size (examples: 512m, 2g, "
                                  "1073741824)", mem);
            return -1;
        }
        if (bytes < MIN_MEMORY) {
            snprintf(err, errlen, "TERMINAL_CONTAINER_MEMORY: '%s' is below the 6m a container needs", mem);
            return -1;
        }
        json_object_set_new(hc, "Memory", json_integer(bytes));
        json_object_set_new(hc, "MemorySwap", json_integer(bytes));   /* no swap on top */
    }
    if (cpu && *cpu) {
        char *end;
        errno = 0;
        double v = strtod(cpu, &end);
        if (end == cpu || *end || errno || !isfinite(v) || v < 0.01 || v > 1024) {
            snprintf(err, errlen, "TERMINAL_CONTAINER_CPU: '%s' is not a number of CPUs between 0.01 "
                                  "and 1024 (examples: 1, 1.5)", cpu);
            return -1;
        }
        json_object_set_new(hc, "NanoCpus", json_integer((json_int_t)(v * 1e9 + 0.5)));
    }
    return 0;
}

/* A named volume: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (Docker's rule). */
static bool volume_name(const char *s)
{
    if (!isalnum((unsigned char)s[0]) || !s[1]) return false;
    for (const char *p = s + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.-", *p)) return false;
    return true;
}

static int add_binds(json_t *hc, const char *spec, char *err, size_t errlen)
{
    json_t *binds = json_array();
    char *item;
    for (const char *s = spec ? spec : ""; (item = next_item(&s)); free(item)) {
        char *parts[4] = {0};
        int n = 0;
        for (char *save = NULL, *p = strtok_r(item, ":", &save); p && n < 4; p = strtok_r(NULL, ":", &save))
            parts[n++] = p;
        bool ok = (n == 2 || n == 3) && (parts[0][0] == '/' || volume_name(parts[0])) && parts[1][0] == '/' &&
                  (n == 2 || !strcmp(parts[2], "ro") || !strcmp(parts[2], "rw"));
        if (!ok) {
            snprintf(err, errlen, "TERMINAL_DOCKER_VOLUMES: '%s' is not host:container[:ro] (an absolute "
                                  "host path or a volume name, an absolute container path, ro or rw)",
                     spec);
            free(item);
            json_decref(binds);
            return -1;
        }
        char *bind = n == 3 ? sw_printf("%s:%s:%s", parts[0], parts[1], parts[2])
                            : sw_printf("%s:%s", parts[0], parts[1]);
        json_array_append_new(binds, json_string(bind));
        free(bind);
    }
    if (json_array_size(binds)) json_object_set_new(hc, "Binds", binds);
    else json_decref(binds);
    return 0;
}

static int add_env(json_t *cfgj, const sw_config *cfg, char *err, size_t errlen)
{
    json_t *env = json_array();
    char *item;
    for (const char *s = cfg->docker_env ? cfg->docker_env : ""; (item = next_item(&s)); free(item)) {
        const char *eq = strchr(item, '=');
        if (!eq || !valid_name(item, (size_t)(eq - item))) {
            snprintf(err, errlen, "TERMINAL_DOCKER_ENV: '%s' is not NAME=value", item);
            free(item);
            json_decref(env);
            return -1;
        }
        json_array_append_new(env, json_string(item));
    }
    /* Forwarded values travel in the container's configuration only, never in a command. */
    for (const char *s = cfg->docker_forward_env ? cfg->docker_forward_env : ""; (item = next_item(&s)); free(item)) {
        if (!valid_name(item, strlen(item))) {
            snprintf(err, errlen, "TERMINAL_DOCKER_FORWARD_ENV: '%s' is not a variable name", item);
            free(item);
            json_decref(env);
            return -1;
        }
        const char *v = getenv(item);
        if (!v) {
            sw_warn("docker: TERMINAL_DOCKER_FORWARD_ENV names %s, which is not set here; not forwarded", item);
            continue;
        }
        char *kv = sw_printf("%s=%s", item, v);
        json_t *js = json_string(kv);
        explicit_bzero(kv, strlen(kv));
        free(kv);
        if (!js) sw_warn("docker: the value of %s is not UTF-8; not forwarded", item);
        else json_array_append_new(env, js);
    }
    json_object_set_new(cfgj, "Env", env);
    return 0;
}

static json_t *labels(const char *task, bool persistent)
{
    json_t *l = json_object();
    json_object_set_new(l, LABEL "managed", json_string("1"));
    json_object_set_new(l, LABEL "task", json_string(task));
    json_object_set_new(l, LABEL "persistent", json_string(persistent ? "true" : "false"));
    json_object_set_new(l, LABEL "host", json_string(g_me.host));
    json_object_set_new(l, LABEL "boot", json_string(g_me.boot));
    json_object_set_new(l, LABEL "pidns", json_string(g_me.pidns));
    json_object_set_new(l, LABEL "server-pid", json_string(g_me.pid));
    json_object_set_new(l, LABEL "server-start", json_string(g_me.start));
    return l;
}

/* The create body for environment o, or NULL with err naming the setting at fault. */
static json_t *container_spec(const sw_open_opts *o, const sw_config *cfg, bool persistent, char *err,
                              size_t errlen)
{
    json_t *c = json_object(), *hc = json_object();
    json_object_set_new(c, "Image", json_string(cfg->docker_image));
    json_object_set_new(c, "Entrypoint", json_pack("[s]", "sleep"));
    json_object_set_new(c, "Cmd", json_pack("[s]", KEEPER_SECONDS));
    if (o->cwd && o->cwd[0] == '/') json_object_set_new(c, "WorkingDir", json_string(o->cwd));
    json_object_set_new(c, "Labels", labels(o->task_id ? o->task_id : "default", persistent));
    json_object_set_new(c, "HostConfig", hc);
    json_object_set_new(hc, "Init", json_true());
    json_object_set_new(hc, "CapDrop", json_pack("[s]", "ALL"));
    json_t *caps = json_array();
    for (size_t i = 0; i < sizeof CAPS / sizeof *CAPS; i++) json_array_append_new(caps, json_string(CAPS[i]));
    json_object_set_new(hc, "CapAdd", caps);
    json_object_set_new(hc, "SecurityOpt", json_pack("[s]", "no-new-privileges"));
    json_object_set_new(hc, "PidsLimit", json_integer(PIDS_LIMIT));
    json_object_set_new(hc, "Tmpfs", json_pack("{s:s}", "/tmp", "rw,nosuid,nodev,mode=1777"));
    if (cfg->docker_network && !strcmp(cfg->docker_network, "false"))
        json_object_set_new(hc, "NetworkMode", json_string("none"));
    if (add_limits(hc, cfg, err, errlen) < 0 || add_binds(hc, cfg->docker_volumes, err, errlen) < 0 ||
        add_env(c, cfg, err, errlen) < 0) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* ---- daemon address and API version ------------------------------------------------- */

static int parse_host(sw_transport *t, char *err, size_t errlen)
{
    const char *h = t->host;
    if (!strncmp(h, "unix://", 7) && h[7] == '/' && strlen(h + 7) < 108) {
        t->sock = sw_strdup(h + 7);
        t->base = sw_strdup("http://localhost");
        return 0;
    }
    if (!strncmp(h, "tcp://", 6) && h[6] && h[6] != '/') {
        char *hp = sw_strdup(h + 6);
        hp[strcspn(hp, "/")] = '\0';
        const char *colon = strrchr(hp, ':');
        bool has_port = colon && !strchr(colon, ']');
        t->base = sw_printf("http://%s%s", hp, has_port ? "" : ":2375");
        free(hp);
        return 0;
    }
    snprintf(err, errlen, "DOCKER_HOST: unsupported address '%s' (expected unix:///path/to/socket or "
                          "tcp://host:port)", h);
    return -1;
}

/* Pings the daemon and appends the API version to the base URL. */
static int negotiate(sw_transport *t, int timeout_ms, char *err, size_t errlen)
{
    reply r;
    int rc = request(t, "GET", "/_ping", NULL, timeout_ms, &r, err, errlen);
    if (rc == SW_TR_OK && r.status != 200) {
        snprintf(err, errlen, "the Docker daemon at %s answered its ping with HTTP %ld", t->host, r.status);
        rc = SW_TR_DEGRADED;
    }
    int major = 1, minor = API_MAX_MINOR;
    if (rc == SW_TR_OK && sscanf(r.api_version, "%d.%d", &major, &minor) == 2) {
        if (major < 1 || (major == 1 && minor < API_MIN_MINOR)) {
            snprintf(err, errlen, "the Docker daemon at %s speaks API %s; shellwire needs 1.%d or newer",
                     t->host, r.api_version, API_MIN_MINOR);
            rc = SW_TR_ERROR;
        } else if (major > 1 || minor > API_MAX_MINOR) {
            minor = API_MAX_MINOR;
        }
    }
    reply_free(&r);
    if (rc != SW_TR_OK) return rc;
    char *base = sw_printf("%s/v1.%d", t->base, minor);
    free(t->base);
    t->base = base;
    return SW_TR_OK;
}

/* ---- containers --------------------------------------------------------------------- */

static void remove_container(sw_transport *t, const char *id, int budget_ms)
{
    int64_t end = sw_now_ms() + budget_ms;
    char err[256];
    long status;
    json_t *j;
    char *path = sw_printf("/containers/%s/stop?t=1", id);
    control_json(t, "POST", path, NULL, budget_ms < STOP_MS ? budget_ms : STOP_MS, &status, &j, err, sizeof err);
    json_decref(j);
    free(path);
    int64_t left = end - sw_now_ms();
    path = sw_printf("/containers/%s?force=true&v=true", id);
    int rc = control_json(t, "DELETE", path, NULL, left > 1000 ? (int)left : 1000, &status, &j, err, sizeof err);
    json_decref(j);
    free(path);
    if (rc != SW_TR_OK || (status >= 300 && status != 404))
        sw_warn("docker: could not remove container %.12s: %s", id, err);
    else
        sw_info("docker: removed container %.12s", id);
}

static bool label_is(json_t *lbl, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(lbl, key));
    return v && !strcmp(v, want);
}

/* True when the labels name a server that is certainly gone: same host, and another boot
 * or (same pid namespace) a pid that no longer runs the process that created it. */
static bool owner_gone(json_t *lbl)
{
    if (label_is(lbl, LABEL "persistent", "true") || !label_is(lbl, LABEL "host", g_me.host)) return false;
    if (!label_is(lbl, LABEL "boot", g_me.boot)) return true;
    if (!label_is(lbl, LABEL "pidns", g_me.pidns)) return false;
    const char *pid = json_string_value(json_object_get(lbl, LABEL "server-pid"));
    const char *start = json_string_value(json_object_get(lbl, LABEL "server-start"));
    long p = pid ? strtol(pid, NULL, 10) : 0;
    if (p <= 0 || !start) return false;
    char now[32];
    snprintf(now, sizeof now, "%llu", sw_proc_start_time((pid_t)p));
    return strcmp(now, start) != 0;
}

/* Once per server: removes the containers left by servers of this host that died
 * without cleaning up (crashed, killed). */
static void sweep_leftovers(sw_transport *t, int timeout_ms)
{
    pthread_mutex_lock(&g_sweep_mu);
    if (g_swept) {
        pthread_mutex_unlock(&g_sweep_mu);
        return;
    }
    char *q = url_escape("{\"label\":[\"" LABEL "managed=1\"]}");
    char *path = sw_printf("/containers/json?all=true&filters=%s", q);
    long status;
    json_t *list;
    char err[256];
    int rc = control_json(t, "GET", path, NULL, timeout_ms, &status, &list, err, sizeof err);
    free(path);
    free(q);
    g_swept = rc == SW_TR_OK && status == 200;
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        const char *id = json_string_value(json_object_get(c, "Id"));
        if (id && owner_gone(json_object_get(c, "Labels"))) {
            sw_info("docker: container %.12s belongs to a server that is gone", id);
            remove_container(t, id, CLOSE_MS);
        }
    }
    json_decref(list);
    pthread_mutex_unlock(&g_sweep_mu);
}

/* "name:tag" / "name@digest" → the pull's query (tag "latest" when absent, so that a pull
 * never fetches every tag). */
static char *pull_query(const char *image)
{
    const char *slash = strrchr(image, '/');
    const char *colon = strchr(slash ? slash + 1 : image, ':');
    bool digest = strchr(image, '@') != NULL;
    char *name = digest || !colon ? sw_strdup(image) : sw_printf("%.*s", (int)(colon - image), image);
    char *qn = url_escape(name), *qt = url_escape(digest ? "" : colon ? colon + 1 : "latest");
    char *q = sw_printf("fromImage=%s&tag=%s", qn, qt);
    free(qn);
    free(qt);
    free(name);
    return q;
}

/* Pulls the image within timeout_ms. The daemon streams JSON progress lines; a failure is
 * a line with "error" even when the status is 200. */
static int pull_image(sw_transport *t, int timeout_ms, char *err, size_t errlen)
{
    sw_info("docker: image %s is not here; pulling it", t->image);
    char *q = pull_query(t->image);
    char *path = sw_printf("/images/create?%s", q);
    reply r;
    int rc = request(t, "POST", path, NULL, timeout_ms, &r, err, errlen);
    free(path);
    free(q);
    char *why = NULL;
    if (rc != SW_TR_OK && strstr(err, "did not answer")) {
        why = sw_printf("the pull did not finish within %d s; pull it beforehand", timeout_ms / 1000);
    } else if (rc == SW_TR_OK && r.status >= 400) {
        why = daemon_message(&r);
    } else if (rc == SW_TR_OK) {
        for (char *p = r.body, *nl; !why && p && *p; p = nl ? nl + 1 : NULL) {
            if ((nl = strchr(p, '\n'))) *nl = '\0';
            json_t *line = json_loads(p, 0, NULL);
            const char *e = json_string_value(json_object_get(line, "error"));
            if (e) why = sw_strdup(e);
            json_decref(line);
        }
    }
    if (why) {
        snprintf(err, errlen, "TERMINAL_DOCKER_IMAGE: image '%s' is not available to the Docker daemon and "
                              "could not be pulled: %s", t->image, why);
        rc = SW_TR_ERROR;
    }
    free(why);
    reply_free(&r);
    return rc;
}

static int start_container(sw_transport *t, const char *id, int timeout_ms, char *err, size_t errlen)
{
    char *path = sw_printf("/containers/%s/start", id);
    long status;
    json_t *j;
    int rc = control_json(t, "POST", path, NULL, timeout_ms, &status, &j, err, errlen);
    json_decref(j);
    free(path);
    if (rc != SW_TR_OK || status == 204 || status == 304) return rc;
    if (status == 404) return SW_TR_GONE;
    return status >= 500 ? SW_TR_DEGRADED : SW_TR_ERROR;
}

/* Prefixes err with what was being done. */
static void explain(char *err, size_t errlen, const char *what)
{
    char why[512];
    snprintf(why, sizeof why, "%s", err);
    snprintf(err, errlen, "%s: %s", what, why);
}

/* Creates and starts a new container; its id goes to *id. */
static int create_container(sw_transport *t, int timeout_ms, char **id, char *err, size_t errlen)
{
    int64_t end = sw_now_ms() + timeout_ms;
    char rnd[9], task[41];
    sw_random_hex(rnd, 4);
    size_t n = 0;
    for (const char *p = t->task; *p && n < sizeof task - 1; p++)
        task[n++] = isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-' ? *p : '-';
    task[n] = '\0';
    char *path = sw_printf("/containers/create?name=shellwire-%s-%s", task, rnd);
    long status;
    json_t *j;
    int rc = control_json(t, "POST", path, json_incref(t->spec), timeout_ms, &status, &j, err, errlen);
    if (rc == SW_TR_OK && status == 404) {
        rc = pull_image(t, (int)(end - sw_now_ms()), err, errlen);
        if (rc == SW_TR_OK)
            rc = control_json(t, "POST", path, json_incref(t->spec), (int)(end - sw_now_ms()), &status, &j, err, errlen);
    }
    free(path);
    const char *cid = json_string_value(json_object_get(j, "Id"));
    if (rc == SW_TR_OK && (status != 201 || !cid)) {
        explain(err, errlen, "the Docker daemon refused to create the container");
        rc = status >= 500 ? SW_TR_DEGRADED : SW_TR_ERROR;
    }
    if (rc == SW_TR_OK) {
        *id = sw_strdup(cid);
        int64_t left = end - sw_now_ms();
        rc = start_container(t, *id, left > 1000 ? (int)left : 1000, err, errlen);
        if (rc != SW_TR_OK) {
            explain(err, errlen, "the container did not start");
            remove_container(t, *id, CLOSE_MS);
            free(*id);
            *id = NULL;
            if (rc == SW_TR_GONE) rc = SW_TR_DEGRADED;
        } else {
            sw_info("docker: started container %.12s (image %s, task %s)", *id, t->image, t->task);
        }
    }
    json_decref(j);
    return rc;
}

/* A persistent container of an earlier server for the same task and image, started. */
static int find_persistent(sw_transport *t, int timeout_ms, char **id, char *err, size_t errlen)
{
    char *task = sw_printf(LABEL "task=%s", t->task);
    json_t *f = json_pack("{s:[s,s,s]}", "label", LABEL "managed=1", LABEL "persistent=true", task);
    char *filters = json_dumps(f, JSON_COMPACT);
    char *q = url_escape(filters);
    char *path = sw_printf("/containers/json?all=true&filters=%s", q);
    long status;
    json_t *list;
    int rc = control_json(t, "GET", path, NULL, timeout_ms, &status, &list, err, errlen);
    *id = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        const char *cid = json_string_value(json_object_get(c, "Id"));
        const char *img = json_string_value(json_object_get(c, "Image"));
        if (cid && img && !strcmp(img, t->image) && start_container(t, cid, timeout_ms, err, errlen) == SW_TR_OK) {
            *id = sw_strdup(cid);
            sw_info("docker: reusing persistent container %.12s", cid);
            break;
        }
    }
    json_decref(list);
    json_decref(f);
    free(path);
    free(q);
    free(filters);
    free(task);
    return rc;
}

/* The container's state: SW_TR_OK running, SW_TR_GONE missing or stopped (*exists says
 * which), SW_TR_DEGRADED daemon unreachable or failing. */
static int container_state(sw_transport *t, const char *id, bool *exists, char *err, size_t errlen)
{
    char *path = sw_printf("/containers/%s/json", id);
    long status;
    json_t *j;
    int rc = control_json(t, "GET", path, NULL, t->connect_ms, &status, &j, err, errlen);
    free(path);
    *exists = rc == SW_TR_OK && status == 200;
    bool running = json_is_true(json_object_get(json_object_get(j, "State"), "Running"));
    json_decref(j);
    if (rc != SW_TR_OK) return rc;
    if (status >= 500) return SW_TR_DEGRADED;
    if (!running) snprintf(err, errlen, "the container %.12s %s", id, *exists ? "is not running" : "no longer exists");
    return running ? SW_TR_OK : SW_TR_GONE;
}

/* ---- dispatchers ------------------------------------------------------------------- */

struct slot {
    CURL *easy;                 /* a connect-only connection, hijacked by the exec */
    curl_socket_t fd;
    char *eid;                  /* the dispatcher's exec */
    unsigned long gen;          /* the container generation it runs in */
    sw_dstream dec;
    char *pend;                 /* stream bytes that came with the HTTP header */
    size_t npend;
    char line[32];              /* the dispatcher's stderr line so far */
    size_t nline;
    /* the current script */
    char tag[48];               /* DONE_TAG<nonce>"__ ", which ends its output */
    size_t taglen;
    char hold[48];              /* output held back because it may begin the tag */
    size_t nhold;
    char rest[32];              /* what follows the tag: "<status> <busy>" */
    size_t nrest;
    bool in_tag, started, done, busy;
    int code;
    bool draining;              /* its report is still to be read */
    slot *next;
};

static void slot_free(slot *s)
{
    curl_easy_cleanup(s->easy);
    free(s->eid);
    free(s->pend);
    free(s);
}

/* Deadline, cancellation and heartbeat of one wait. */
typedef struct waiter {
    int64_t deadline;           /* 0: none */
    sw_cancel *cancel;
    void (*tick)(void *);
    void *ctx;
    int64_t next_tick;
} waiter;

enum { W_BROKEN = -2, W_CANCELLED = -1, W_TIMEOUT = 0, W_READY = 1 };

static int wait_fd(waiter *w, int fd, short events)
{
    for (;;) {
        if (w->cancel && sw_cancel_fired(w->cancel)) return W_CANCELLED;
        int64_t now = sw_now_ms();
        if (w->deadline && now >= w->deadline) return W_TIMEOUT;
        if (w->tick && now >= w->next_tick) {
            w->tick(w->ctx);
            w->next_tick = now + 1000;
        }
        int64_t ms = w->tick ? w->next_tick - now : -1;
        if (w->deadline && (ms < 0 || w->deadline - now < ms)) ms = w->deadline - now;
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = w->cancel ? w->cancel->fd : -1, .events = POLLIN}};
        int r = poll(p, 2, (int)ms);
        if (r < 0 && errno != EINTR) return W_BROKEN;
        if (r > 0 && p[0].revents) return W_READY;
    }
}

static int slot_send(slot *s, waiter *w, const char *buf, size_t len)
{
    while (len > 0) {
        size_t n = 0;
        CURLcode cc = curl_easy_send(s->easy, buf, len, &n);
        if (cc == CURLE_AGAIN) {
            int r = wait_fd(w, s->fd, POLLOUT);
            if (r != W_READY) return r;
            continue;
        }
        if (cc != CURLE_OK) return W_BROKEN;
        buf += n;
        len -= n;
    }
    return W_READY;
}

/* The dispatcher's stderr: a line that says the script has started. */
static void start_report(slot *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (s->nline < sizeof s->line - 1) s->line[s->nline++] = p[i];
            continue;
        }
        s->line[s->nline] = '\0';
        s->nline = 0;
        if (!strcmp(s->line, START_TAG)) s->started = true;
    }
}

/* "<status> <busy>\n" after the tag. */
static void end_report(slot *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n && !s->done; i++) {
        if (p[i] != '\n') {
            if (s->nrest < sizeof s->rest - 1) s->rest[s->nrest++] = p[i];
            continue;
        }
        s->rest[s->nrest] = '\0';
        int busy = 1;
        if (sscanf(s->rest, "%d %d", &s->code, &busy) != 2) s->code = -1;
        s->busy = busy != 0;
        s->done = true;
    }
}

/* Where decoded frames go while one script runs. */
typedef struct feed {
    slot *s;
    const sw_exec_req *req;     /* NULL: output is dropped */
    bool stopped;               /* req->out asked to stop */
    char *buf;                  /* READ_CHUNK bytes */
} feed;

static void deliver(feed *f, const char *p, size_t n)
{
    if (n && f->req && f->req->out && !f->stopped && f->req->out(f->req->ctx, p, n)) f->stopped = true;
}

/* The script's output: passed on up to the tag, a tail that may begin it held back. */
static void take_output(feed *f, const char *p, size_t n)
{
    slot *s = f->s;
    if (s->in_tag || s->done) {
        end_report(s, p, n);
        return;
    }
    size_t len = s->nhold + n;
    char *all = sw_xmalloc(len);
    memcpy(all, s->hold, s->nhold);
    memcpy(all + s->nhold, p, n);
    const char *hit = memmem(all, len, s->tag, s->taglen);
    if (hit) {
        deliver(f, all, (size_t)(hit - all));
        s->nhold = 0;
        s->in_tag = true;
        end_report(s, hit + s->taglen, len - (size_t)(hit - all) - s->taglen);
    } else {
        size_t keep = len < s->taglen - 1 ? len : s->taglen - 1;
        while (keep > 0 && memcmp(all + len - keep, s->tag, keep) != 0) keep--;
        deliver(f, all, len - keep);
        memcpy(s->hold, all + len - keep, keep);
        s->nhold = keep;
    }
    free(all);
}

static int on_frame(void *ctx, int stream, const char *buf, size_t len)
{
    feed *f = ctx;
    if (stream == 2) start_report(f->s, buf, len);
    else take_output(f, buf, len);
    return 0;
}

/* Prepares the slot for a new script; returns its header line. */
static char *slot_begin(slot *s, size_t len)
{
    char nonce[17];
    sw_random_hex(nonce, 8);
    s->taglen = (size_t)snprintf(s->tag, sizeof s->tag, DONE_TAG "%s__ ", nonce);
    s->nhold = s->nrest = 0;
    s->in_tag = s->started = s->done = s->busy = false;
    s->code = -1;
    return sw_printf("%zu %s\n", len, nonce);
}

/* Waits for and decodes the next bytes from the dispatcher. */
static int slot_read(slot *s, waiter *w, feed *f)
{
    size_t n = 0;
    if (s->npend) {
        int rc = sw_dstream_feed(&s->dec, s->pend, s->npend, on_frame, f);
        free(s->pend);
        s->pend = NULL;
        s->npend = 0;
        return rc == SW_DSTREAM_BAD ? W_BROKEN : W_READY;
    }
    int r = wait_fd(w, s->fd, POLLIN);
    if (r != W_READY) return r;
    CURLcode cc = curl_easy_recv(s->easy, f->buf, READ_CHUNK, &n);
    if (cc == CURLE_AGAIN) return W_READY;
    if (cc != CURLE_OK || n == 0) return W_BROKEN;
    return sw_dstream_feed(&s->dec, f->buf, n, on_frame, f) == SW_DSTREAM_BAD ? W_BROKEN : W_READY;
}

/* How a refused exec maps to a transport status. */
static int refused(long status, const char *msg)
{
    if (status == 404) return SW_TR_GONE;
    if (status == 409) return strstr(msg, "paused") ? SW_TR_DEGRADED : SW_TR_GONE;
    return status >= 500 ? SW_TR_DEGRADED : SW_TR_ERROR;
}

/* Reads the HTTP answer to the exec start up to the end of its header; what follows is
 * the stream. For an error answer, err gets the daemon's message. */
static long start_answer(slot *s, waiter *w, char *err, size_t errlen)
{
    size_t cap = 8192, len = 0;
    char *buf = sw_xmalloc(cap + 1);
    char *end = NULL;
    long status = 0;
    size_t want = 0;            /* header + body length of an error answer */
    for (;;) {
        buf[len] = '\0';
        if (!end && (end = strstr(buf, "\r\n\r\n"))) {
            end += 4;
            if (sscanf(buf, "HTTP/%*s %ld", &status) != 1) status = 0;
            if (status == 200 || status == 101) break;
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            size_t blen = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            want = (size_t)(end - buf) + (blen < cap / 2 ? blen : cap / 2);
        }
        if (end && len >= want) break;
        if (len == cap || wait_fd(w, s->fd, POLLIN) != W_READY) break;
        size_t n = 0;
        CURLcode cc = curl_easy_recv(s->easy, buf + len, cap - len, &n);
        if (cc == CURLE_AGAIN) continue;
        if (cc != CURLE_OK || n == 0) break;
        len += n;
    }
    if (status == 200 || status == 101) {
        s->npend = len - (size_t)(end - buf);
        s->pend = s->npend ? sw_xmalloc(s->npend) : NULL;
        if (s->npend) memcpy(s->pend, end, s->npend);
    } else if (end) {
        reply r = {.status = status, .body = end, .len = strlen(end)};
        char *m = daemon_message(&r);
        snprintf(err, errlen, "%s", m);
        free(m);
    } else {
        snprintf(err, errlen, "the Docker daemon did not answer the start of an exec");
    }
    free(buf);
    return end ? status : 0;
}

/* Starts `bash -c program` in the container as an exec attached to a new connection. */
static int slot_open(sw_transport *t, const char *program, slot **out, char *err, size_t errlen)
{
    unsigned long gen;
    char *id = current_id(t, &gen);
    char *path = sw_printf("/containers/%s/exec", id);
    long status;
    json_t *j;
    int rc = control_json(t, "POST", path,
                          json_pack("{s:b,s:b,s:b,s:b,s:s,s:[s,s,s]}", "AttachStdin", 1, "AttachStdout", 1,
                                    "AttachStderr", 1, "Tty", 0, "DetachKeys", "ctrl-@", "Cmd", "bash", "-c",
                                    program),
                          CTL_MS, &status, &j, err, errlen);
    free(path);
    free(id);
    const char *eid = json_string_value(json_object_get(j, "Id"));
    if (rc == SW_TR_OK && (status != 201 || !eid)) rc = refused(status, err);
    slot *s = NULL;
    if (rc == SW_TR_OK) {
        s = sw_xcalloc(1, sizeof *s);
        s->eid = sw_strdup(eid);
        s->gen = gen;
        if (!(s->easy = curl_easy_init())) abort();
        common_opts(t, s->easy, t->base);
        curl_easy_setopt(s->easy, CURLOPT_CONNECT_ONLY, 1L);
        CURLcode cc = curl_easy_perform(s->easy);
        if (cc != CURLE_OK) {
            snprintf(err, errlen, "cannot reach the Docker daemon at %s: %s", t->host, curl_easy_strerror(cc));
            rc = SW_TR_DEGRADED;
        }
    }
    if (rc == SW_TR_OK) {
        curl_easy_getinfo(s->easy, CURLINFO_ACTIVESOCKET, &s->fd);
        static const char body[] = "{\"Detach\":false,\"Tty\":false}";
        char *req = sw_printf("POST %s/exec/%s/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n\r\n%s",
                              strchr(t->base + 7, '/'), s->eid, sizeof body - 1, body);
        waiter w = {.deadline = sw_now_ms() + CTL_MS};
        status = slot_send(s, &w, req, strlen(req)) == W_READY ? start_answer(s, &w, err, errlen) : 0;
        free(req);
        if (!status) snprintf(err, errlen, "the Docker daemon at %s dropped the connection", t->host);
        if (status != 200 && status != 101) rc = status ? refused(status, err) : SW_TR_DEGRADED;
    }
    json_decref(j);
    if (rc != SW_TR_OK && s) {
        slot_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

/* True when an idle slot can take a script: its previous report is read (at most
 * DRAIN_MS more), nothing holds its output, and the connection is still open. */
static bool slot_ready(slot *s)
{
    if (s->draining) {
        waiter w = {.deadline = sw_now_ms() + DRAIN_MS};
        feed f = {.s = s, .buf = sw_xmalloc(READ_CHUNK)};
        int r = W_READY;
        while (r == W_READY && !s->done) r = slot_read(s, &w, &f);
        free(f.buf);
        if (!s->done || s->busy) return false;
        s->draining = false;
    }
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;     /* an idle dispatcher says nothing: readable means closed */
}

static int slot_take(sw_transport *t, slot **out, char *err, size_t errlen)
{
    for (;;) {
        pthread_mutex_lock(&t->mu);
        slot *s = t->idle;
        unsigned long gen = t->gen;
        if (s) {
            t->idle = s->next;
            t->nidle--;
        }
        pthread_mutex_unlock(&t->mu);
        if (!s) return slot_open(t, DISPATCHER, out, err, errlen);
        if (s->gen == gen && slot_ready(s)) {
            *out = s;
            return SW_TR_OK;
        }
        slot_free(s);
    }
}

static void slot_put(sw_transport *t, slot *s)
{
    pthread_mutex_lock(&t->mu);
    bool keep = s->gen == t->gen && t->nidle < SLOT_POOL;
    if (keep) {
        s->next = t->idle;
        t->idle = s;
        t->nidle++;
    }
    pthread_mutex_unlock(&t->mu);
    if (!keep) slot_free(s);
}

/* Closes the idle dispatchers (their container changed, or the environment ends). */
static void slots_flush(sw_transport *t)
{
    pthread_mutex_lock(&t->mu);
    slot *list = t->idle;
    t->idle = NULL;
    t->nidle = 0;
    t->gen++;
    pthread_mutex_unlock(&t->mu);
    while (list) {
        slot *next = list->next;
        slot_free(list);
        list = next;
    }
}

/* The dispatcher's connection ended during a script it had started: its exec's status
 * is the best answer left (126 when bash could not start, 137 when it was killed, ...),
 * unless the container itself is gone or the daemon unreachable. */
static int lost_dispatcher(sw_transport *t, slot *s, int *exit_code, char *err, size_t errlen)
{
    char *path = sw_printf("/exec/%s/json", s->eid);
    long status;
    json_t *j;
    int rc = control_json(t, "GET", path, NULL, CTL_MS, &status, &j, err, errlen);
    free(path);
    json_t *code = json_object_get(j, "ExitCode");
    bool known = rc == SW_TR_OK && status == 200 && json_is_integer(code);
    if (known) *exit_code = (int)json_integer_value(code);
    json_decref(j);
    if (known || rc != SW_TR_OK) return rc;
    bool exists;
    char *id = current_id(t, NULL);
    rc = container_state(t, id, &exists, err, errlen);
    free(id);
    if (rc == SW_TR_OK) {
        snprintf(err, errlen, "the connection to the command in the container was lost");
        rc = SW_TR_DEGRADED;
    }
    return rc;
}

/* Ties a non-persistent container's life to this server's (LIFELINE); called whenever
 * a container was created or started. */
static void attach_lifeline(sw_transport *t)
{
    if (t->persistent) return;
    char err[256];
    slot *l = NULL;
    if (slot_open(t, LIFELINE, &l, err, sizeof err) != SW_TR_OK)
        sw_warn("docker: the container may outlive a crash of this server (no lifeline: %s)", err);
    pthread_mutex_lock(&t->mu);
    slot *old = t->lifeline;
    t->lifeline = l;
    pthread_mutex_unlock(&t->mu);
    if (old) slot_free(old);
}

/* ---- transport operations ----------------------------------------------------------- */

static int tr_exec(sw_transport *t, const sw_exec_req *req, int *exit_code, char *err, size_t errlen)
{
    int64_t now = sw_now_ms();
    waiter w = {.deadline = req->timeout_ms > 0 ? now + req->timeout_ms : 0, .cancel = req->cancel,
                .tick = req->tick, .ctx = req->ctx, .next_tick = now + 1000};
    size_t len = strlen(req->script);
    feed f = {.req = req, .buf = sw_xmalloc(READ_CHUNK)};
    int rc;
    for (int attempt = 0;; attempt++) {
        slot *s;
        if ((rc = slot_take(t, &s, err, errlen)) != SW_TR_OK) break;
        f.s = s;
        f.stopped = false;
        char *head = slot_begin(s, len);
        int r = slot_send(s, &w, head, strlen(head));
        free(head);
        if (r == W_READY) r = slot_send(s, &w, req->script, len);
        while (r == W_READY && !s->done && !f.stopped) r = slot_read(s, &w, &f);
        if (f.stopped || (r == W_READY && s->done)) {
            /* Finished (or finishing: the rest of the report is read when it is reused). */
            bool reuse = s->done ? !s->busy : r == W_READY;
            s->draining = !s->done;
            *exit_code = s->code;
            if (reuse) slot_put(t, s);
            else slot_free(s);
            rc = f.stopped ? SW_TR_INTERRUPTED : SW_TR_OK;
        } else if (!s->started && attempt == 0 && r == W_BROKEN) {
            slot_free(s);       /* a dispatcher that had died idle: the script never ran */
            continue;
        } else {
            deliver(&f, s->hold, s->nhold);     /* output after all, not the start of a tag */
            rc = r == W_BROKEN ? lost_dispatcher(t, s, exit_code, err, errlen) : SW_TR_INTERRUPTED;
            slot_free(s);
        }
        break;
    }
    free(f.buf);
    return rc;
}

static void transport_free(sw_transport *t)
{
    slots_flush(t);
    if (t->lifeline) slot_free(t->lifeline);
    while (t->nctl) curl_easy_cleanup(t->ctl[--t->nctl]);
    curl_slist_free_all(t->headers);
    json_decref(t->spec);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->recreate_mu);
    free(t->host);
    free(t->sock);
    free(t->base);
    free(t->image);
    free(t->task);
    free(t->id);
    free(t);
}

static int tr_connect(const sw_open_opts *o, sw_transport **out, char *err, size_t errlen)
{
    pthread_once(&g_init_once, init_once);
    const sw_config *cfg = o->config;
    if (!cfg || !cfg->docker_image || !cfg->docker_image[0]) {
        snprintf(err, errlen, "the docker backend needs an image: set TERMINAL_DOCKER_IMAGE (or --image), "
                              "e.g. TERMINAL_DOCKER_IMAGE=debian:12");
        return SW_TR_ERROR;
    }
    sw_transport *t = sw_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->recreate_mu, NULL);
    t->host = sw_strdup(cfg->docker_host && cfg->docker_host[0] ? cfg->docker_host : DEFAULT_HOST);
    t->image = sw_strdup(cfg->docker_image);
    t->task = sw_strdup(o->task_id ? o->task_id : "default");
    t->persistent = cfg->container_persistent && !strcmp(cfg->container_persistent, "true");
    t->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000;
    t->headers = curl_slist_append(NULL, "Content-Type: application/json");
    t->headers = curl_slist_append(t->headers, "Expect:");   /* no 100-continue round trip */
    int rc = SW_TR_ERROR;
    if (parse_host(t, err, errlen) < 0 || !(t->spec = container_spec(o, cfg, t->persistent, err, errlen)))
        goto fail;
    int64_t end = sw_now_ms() + t->connect_ms;
    if ((rc = negotiate(t, t->connect_ms, err, errlen)) != SW_TR_OK) goto fail;
    sweep_leftovers(t, t->connect_ms);
    if (t->persistent && (rc = find_persistent(t, (int)(end - sw_now_ms()), &t->id, err, errlen)) != SW_TR_OK)
        goto fail;
    int64_t left = end - sw_now_ms();
    if (!t->id && (rc = create_container(t, left > 1000 ? (int)left : 1000, &t->id, err, errlen)) != SW_TR_OK)
        goto fail;
    attach_lifeline(t);
    *out = t;
    return SW_TR_OK;
fail:
    transport_free(t);
    return rc;
}

static int tr_reconnect(sw_transport *t, char *err, size_t errlen)
{
    char *id = current_id(t, NULL);
    bool exists;
    int rc = container_state(t, id, &exists, err, errlen);
    free(id);
    return rc;
}

/* Brings the environment back: nothing to do if the container runs (another thread was
 * first), start it again if it stopped (daemon restart), else a new container. */
static int tr_recreate(sw_transport *t, char *err, size_t errlen)
{
    pthread_mutex_lock(&t->recreate_mu);
    char *id = current_id(t, NULL);
    bool exists = false, changed = false;
    int rc = container_state(t, id, &exists, err, errlen);
    if (rc == SW_TR_GONE && exists) {
        rc = start_container(t, id, t->connect_ms, err, errlen);
        if (rc == SW_TR_OK) {
            sw_info("docker: restarted container %.12s", id);
            changed = true;
        } else if (rc != SW_TR_DEGRADED) {
            remove_container(t, id, CLOSE_MS);
            rc = SW_TR_GONE;
        }
    }
    if (rc == SW_TR_GONE) {
        char *fresh = NULL;
        rc = create_container(t, t->connect_ms, &fresh, err, errlen);
        if (rc == SW_TR_OK) {
            pthread_mutex_lock(&t->mu);
            free(t->id);
            t->id = fresh;
            pthread_mutex_unlock(&t->mu);
            changed = true;
        }
    }
    if (changed) {
        slots_flush(t);
        attach_lifeline(t);
    }
    free(id);
    pthread_mutex_unlock(&t->recreate_mu);
    return rc;
}

static void tr_close(sw_transport *t)
{
    slots_flush(t);             /* dispatchers end when their connection closes */
    if (!t->persistent) remove_container(t, t->id, CLOSE_MS);
    transport_free(t);
}

static const sw_transport_ops transport = {
    .name = "docker",
    .connect = tr_connect,
    .exec = tr_exec,
    .reconnect = tr_reconnect,
    .recreate = tr_recreate,
    .close = tr_close,
};

static int docker_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    return sw_remote_open(&transport, o, out, err, errlen);
}

/* At start: an image is set, and the daemon address, limits, volumes and environment
 * settings parse. */
static int docker_check_config(const sw_config *cfg, char *err, size_t errlen)
{
    if (!cfg->docker_image || !cfg->docker_image[0]) {
        snprintf(err, errlen, "the docker backend needs an image: set TERMINAL_DOCKER_IMAGE (or --image), "
                              "e.g. TERMINAL_DOCKER_IMAGE=debian:12");
        return -1;
    }
    sw_transport probe = {.host = cfg->docker_host && cfg->docker_host[0] ? cfg->docker_host : DEFAULT_HOST};
    int rc = parse_host(&probe, err, errlen);
    free(probe.sock);
    free(probe.base);
    if (rc < 0) return -1;
    json_t *hc = json_object(), *cj = json_object();
    rc = add_limits(hc, cfg, err, errlen);
    if (rc == 0) rc = add_binds(hc, cfg->docker_volumes, err, errlen);
    if (rc == 0) rc = add_env(cj, cfg, err, errlen);
    json_decref(hc);
    json_decref(cj);
    return rc;
}

const sw_backend_ops sw_docker_ops =
    SW_REMOTE_OPS("docker", true, docker_open, .check_config = docker_check_config);
