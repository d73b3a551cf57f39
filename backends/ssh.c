/* backends/ssh.c — the ssh transport: runs the remote layer's scripts (backends/remote.h)
 * on a host reached with libssh2. No ssh subprocess, no ControlMaster.
 *
 * Connections. An environment holds one authenticated session (a "conn") and opens more,
 * up to MAX_CONNS, only while every channel slot of the open ones is taken: OpenSSH caps
 * the channels of one connection (MaxSessions, 10 by default); a conn whose server refuses
 * a channel gets no new one until one of its channels ends. Every script runs on a channel
 * of its own.
 *
 * Threads. A libssh2 session and its channels must be used by one thread at a time, so
 * once a conn is set up only the environment's I/O thread calls libssh2 on it. That thread
 * drives every channel through a small state machine with non-blocking calls, polls the
 * sockets and an eventfd that callers use to wake it, sends keepalives and notices dead
 * conns. exec queues a job, then waits on the job's eventfd, its cancel fd and its
 * deadline, and passes the output on from its own thread. A conn is set up (TCP,
 * handshake, host key, authentication) in blocking mode by the thread that needs it,
 * before the I/O thread sees it; state shared between the threads is under one mutex.
 *
 * Spare channels. Most of what a command costs over ssh is the server starting the
 * user's login shell for each channel, rc files included. The I/O thread keeps SPARES
 * channels open ahead of need, each running a bash that prints a ready line and then waits
 * for its script on stdin; exec hands its script to one and a new spare starts at once.
 * The script travels on stdin, never on a command line (it may carry a sudo password),
 * and runs with eval in that bash, which skips rc files (the snapshot holds the state).
 * Anything the login shell prints before the ready line is dropped.
 *
 * Host keys follow OpenSSH's accept-new: the key of a host the known_hosts file does not
 * know is appended to it ("[host]:port" for ports other than 22); a host known with a
 * different key is refused, naming the offered key's SHA256 fingerprint.
 *
 * Dead connections: a socket error or end of stream, or DEAD_AFTER_MS without a byte
 * although a keepalive (which the server answers) goes out every KEEPALIVE_S seconds,
 * fails the conn's running jobs with SW_TR_DEGRADED and drops it; the next exec or
 * reconnect opens a new one. A job whose script had not been sent yet is retried once.
 */
#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backends/remote.h"
#include "server/config.h"
#include "server/log.h"
#include "server/util.h"

#define DEFAULT_CONNECT_MS 15000
#define KEEPALIVE_S 5               /* keepalive interval; the server answers each one */
#define DEAD_AFTER_MS 16000         /* silence that declares a conn dead */
#define CONN_CHANNELS 8             /* channels per conn (OpenSSH's MaxSessions is 10) */
#define MAX_CONNS 4
#define SPARES 2
#define SPARE_DEATHS_MAX 3          /* spares that died unused before we stop making them */
#define READ_CHUNK (64 * 1024)
#define JOB_BUF_MAX (1024 * 1024)   /* undelivered output per job before reading pauses */
#define ERR_TAIL 400

/* What every channel runs. The ready line's first character occurs nowhere else in it,
 * so a plain byte-by-byte match finds it even after arbitrary noise. */
#define READY "<shellwire-ready>\n"
static const char START_CMD[] =
    "exec bash --norc -c 'printf \"%s\\n\" \"<shellwire-ready>\"; "
    "IFS= read -r -d \"\" __sw_s; eval \"unset __sw_s; $__sw_s\"'";

#define RSA_HINT " (libssh2 1.10 signs with RSA keys using SHA-1 only, which OpenSSH 8.8 " \
                 "and later refuse by default: use an ed25519 or ECDSA key)"

/* Channel states, in the order a channel goes through them. */
enum { CH_WAIT, CH_OPEN, CH_START, CH_IDLE, CH_WRITE, CH_EOF, CH_RUN, CH_CLOSE, CH_FREE };

/* chan_step results besides libssh2's negative codes. */
enum { STEP_BLOCKED = 0, STEP_MOVED = 1, STEP_GONE = 2 };

typedef struct job job;
typedef struct conn conn;

typedef struct chan {
    struct chan *next;
    conn *c;
    LIBSSH2_CHANNEL *ch;
    int st;
    job *j;                 /* the job it runs; NULL for a spare or an abandoned channel */
    bool ready;             /* the ready line has come: what follows is the script's */
    size_t matched;         /* bytes of the ready line matched so far */
    char etail[ERR_TAIL];   /* the end of its stderr (the login shell's complaints) */
    size_t elen;
} chan;

struct conn {
    conn *next;
    int fd;
    LIBSSH2_SESSION *s;
    chan *chans;
    int nchans;
    bool full;              /* the server refused a channel: none until one ends */
    chan *opening;          /* libssh2 keeps a session's channel-open state in the session */
    int64_t last_rx;        /* when the socket last delivered bytes */
    char sock_err[128];     /* what the socket callbacks saw go wrong */
};

struct job {
    job *next;              /* in the queue */
    const char *script;
    size_t len, off;
    chan *h;
    int efd;                /* readable when there is output or the job is done */
    char *buf;
    size_t blen, bcap;
    bool paused, done, started;
    int rc, status;
    char err[256];
};

struct sw_transport {
    char *host, *user, *key, *pass, *known_hosts, *where;
    int port, connect_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a connection attempt finished */
    conn *conns;
    int nconns;
    bool connecting;
    unsigned long attempts; /* finished connection attempts */
    int conn_rc;            /* result of the last failed one */
    char conn_err[256];
    job *queue;
    int wake;               /* eventfd: wakes the I/O thread */
    pthread_t io;
    bool io_started, stopping;
    int spare_deaths;
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_rc;
static pthread_mutex_t g_known_mu = PTHREAD_MUTEX_INITIALIZER;

static void global_init(void) { g_init_rc = libssh2_init(0); }

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *ssh_error(LIBSSH2_SESSION *s)
{
    char *msg = NULL;
    libssh2_session_last_error(s, &msg, NULL, 0);
    return msg && *msg ? msg : "unknown libssh2 error";
}

/* Why a conn failed: what the socket saw, else libssh2's last message. */
static const char *conn_why(conn *c)
{
    return c->sock_err[0] ? c->sock_err : ssh_error(c->s);
}

/* Errors after which the session cannot be used any more. */
static bool conn_fatal(conn *c, int rc)
{
    switch (rc) {
    case LIBSSH2_ERROR_SOCKET_NONE: case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_SOCKET_RECV: case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT: case LIBSSH2_ERROR_TIMEOUT: case LIBSSH2_ERROR_PROTO:
    case LIBSSH2_ERROR_DECRYPT: case LIBSSH2_ERROR_ENCRYPT: case LIBSSH2_ERROR_INVALID_MAC:
    case LIBSSH2_ERROR_KEX_FAILURE: case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
    case LIBSSH2_ERROR_BAD_SOCKET: case LIBSSH2_ERROR_ALLOC:
        return true;
    default:
        return c->sock_err[0] != '\0';
    }
}

static void wake_io(sw_transport *t)
{
    uint64_t one = 1;
    if (write(t->wake, &one, sizeof one) < 0) { /* counter full: already readable */ }
}

static void drain_fd(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof v) < 0) { /* nothing pending */ }
}

/* ---- sockets ------------------------------------------------------------------------ */

/* libssh2's own I/O plus a note of when bytes arrived (for the silence check) and of what
 * ended the stream (for the error message). */
static LIBSSH2_RECV_FUNC(sock_recv)
{
    conn *c = *abstract;
    ssize_t n = recv(socket, buffer, length, flags);
    if (n > 0) {
        c->last_rx = sw_now_ms();
        return n;
    }
    if (n == 0) {
        snprintf(c->sock_err, sizeof c->sock_err, "the server closed the connection");
        return 0;
    }
    int e = errno;
    if (e == EAGAIN || e == EINTR) return -EAGAIN;
    snprintf(c->sock_err, sizeof c->sock_err, "%s", strerror(e));
    return -e;
}

static LIBSSH2_SEND_FUNC(sock_send)
{
    conn *c = *abstract;
    ssize_t n = send(socket, buffer, length, flags);
    if (n >= 0) return n;
    int e = errno;
    if (e == EAGAIN || e == EINTR) return -EAGAIN;
    snprintf(c->sock_err, sizeof c->sock_err, "%s", strerror(e));
    return -e;
}

static int try_connect(const struct addrinfo *ai, int64_t until, int *e)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *e = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) {
        *e = errno;
        close(fd);
        return -1;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    for (;;) {
        int64_t left = until - sw_now_ms();
        if (left <= 0) {
            *e = ETIMEDOUT;
            close(fd);
            return -1;
        }
        int r = poll(&p, 1, (int)left);
        if (r > 0) break;
        if (r < 0 && errno != EINTR) {
            *e = errno;
            close(fd);
            return -1;
        }
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
    if (soerr) {
        *e = soerr;
        close(fd);
        return -1;
    }
    return fd;
}

static int tcp_connect(const sw_transport *t, int64_t until, int *out, char *err, size_t errlen)
{
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(t->host, port, &hints, &res);
    if (g)
        return fail(err, errlen, g == EAI_AGAIN ? SW_TR_DEGRADED : SW_TR_ERROR,
                    "cannot resolve the ssh host '%s' (TERMINAL_SSH_HOST): %s", t->host,
                    gai_strerror(g));
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) fd = try_connect(ai, until, &e);
    freeaddrinfo(res);
    if (fd < 0)
        return fail(err, errlen, SW_TR_DEGRADED, "cannot connect to %s:%d: %s", t->host, t->port,
                    e == ETIMEDOUT ? "no answer within the connect timeout" : strerror(e));
    /* Small packets go out at once; the kernel gives up on a peer that stops acking. */
    int one = 1;
    unsigned int user_timeout = DEAD_AFTER_MS;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
    *out = fd;
    return SW_TR_OK;
}

/* ---- host keys ---------------------------------------------------------------------- */

static const struct key_type {
    int hostkey;            /* LIBSSH2_HOSTKEY_TYPE_* */
    int known;              /* LIBSSH2_KNOWNHOST_KEY_* */
    const char *alg, *name;
} key_types[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519", "ED25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256", "ECDSA"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384", "ECDSA"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521", "ECDSA"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa", "RSA"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss", "DSA"},
};
#define N_KEY_TYPES (sizeof key_types / sizeof *key_types)
#define KH_PLAIN (LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW)

/* Reads the file line by line, so that one line libssh2 cannot parse (a key type it does
 * not know, a marker) does not hide the lines after it. */
static void load_known(LIBSSH2_KNOWNHOSTS *kh, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (!n || line[0] == '#') continue;
        if (libssh2_knownhost_readline(kh, line, (size_t)n, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
            sw_debug("ssh: %s: skipping a line libssh2 cannot read", path);
    }
    free(line);
    fclose(f);
}

/* True when the file holds a key of type k for the host (a dummy key then mismatches). */
static bool known_with(const sw_transport *t, LIBSSH2_KNOWNHOSTS *kh, const struct key_type *k)
{
    struct libssh2_knownhost *e = NULL;
    return libssh2_knownhost_checkp(kh, t->host, t->port, "-", 1, KH_PLAIN | k->known, &e) ==
           LIBSSH2_KNOWNHOST_CHECK_MISMATCH;
}

/* Asks for the host key types already recorded for this host first (as OpenSSH does), so
 * a host with several keys offers the one we can check. */
static void prefer_known_types(const sw_transport *t, LIBSSH2_SESSION *s)
{
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s);
    if (!kh) return;
    load_known(kh, t->known_hosts);
    char pref[256] = "";
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < N_KEY_TYPES; i++)
            if (known_with(t, kh, &key_types[i]) == (pass == 0)) {
                if (pref[0]) strcat(pref, ",");
                strcat(pref, key_types[i].alg);
            }
    libssh2_knownhost_free(kh);
    libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, pref);
}

static void base64_nopad(const unsigned char *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < len) out[o++] = tab[v >> 6 & 63];
        if (i + 2 < len) out[o++] = tab[v & 63];
    }
    out[o] = '\0';
}

/* OpenSSH's fingerprint form: "SHA256:" and the unpadded base64 of the key's hash. */
static void fingerprint(LIBSSH2_SESSION *s, char *out, size_t n)
{
    const char *h = libssh2_hostkey_hash(s, LIBSSH2_HOSTKEY_HASH_SHA256);
    char b64[48];
    if (!h) snprintf(b64, sizeof b64, "(unavailable)");
    else base64_nopad((const unsigned char *)h, 32, b64);
    snprintf(out, n, "SHA256:%s", b64);
}

static char *known_name(const sw_transport *t)
{
    return t->port == 22 ? sw_strdup(t->host) : sw_printf("[%s]:%d", t->host, t->port);
}

/* Appends a line, creating the directory (0700) and the file (0600) if needed. */
static int append_line(const char *path, const char *line, size_t len)
{
    char *dir = sw_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        sw_mkdir_p(dir, 0700);
    }
    free(dir);
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    struct stat st;
    char last = '\n';
    if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1) last = '\n';
    int rc = (last == '\n' ? 0 : sw_write_all(fd, "\n", 1)) < 0 ? -1 : sw_write_all(fd, line, len);
    int e = errno;
    if (close(fd) < 0 && rc == 0) rc = -1;
    errno = e;
    return rc;
}

static int record_host(const sw_transport *t, LIBSSH2_KNOWNHOSTS *kh, const char *key, size_t len,
                       const struct key_type *k, const char *fp, char *err, size_t errlen)
{
    char *name = known_name(t);
    struct libssh2_knownhost *e = NULL;
    char line[8192];
    size_t ll = 0;
    int rc = libssh2_knownhost_addc(kh, name, NULL, key, len, NULL, 0, KH_PLAIN | k->known, &e);
    if (rc == 0)
        rc = libssh2_knownhost_writeline(kh, e, line, sizeof line, &ll, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    if (rc == 0 && append_line(t->known_hosts, line, ll) < 0) {
        rc = fail(err, errlen, SW_TR_ERROR, "cannot record the host key of %s in %s "
                  "(SHELLWIRE_KNOWN_HOSTS): %s", name, t->known_hosts, strerror(errno));
    } else if (rc == 0) {
        sw_log(SW_LOG_NOTICE, "ssh: new host %s: recorded its %s key %s in %s", name, k->name, fp,
               t->known_hosts);
    } else {
        rc = fail(err, errlen, SW_TR_ERROR, "cannot record the host key of %s: libssh2 error %d",
                  name, rc);
    }
    free(name);
    return rc;
}

static int verify_host_key(const sw_transport *t, LIBSSH2_SESSION *s, LIBSSH2_KNOWNHOSTS *kh,
                           char *err, size_t errlen)
{
    size_t len = 0;
    int type = 0;
    const char *key = libssh2_session_hostkey(s, &len, &type);
    const struct key_type *k = NULL;
    for (size_t i = 0; i < N_KEY_TYPES; i++)
        if (key_types[i].hostkey == type) k = &key_types[i];
    if (!key || !k)
        return fail(err, errlen, SW_TR_ERROR, "%s offered a host key of a type shellwire cannot "
                    "check", t->where);
    char fp[64];
    fingerprint(s, fp, sizeof fp);
    struct libssh2_knownhost *e = NULL;
    int r = libssh2_knownhost_checkp(kh, t->host, t->port, key, len, KH_PLAIN | k->known, &e);
    if (r == LIBSSH2_KNOWNHOST_CHECK_MATCH) return SW_TR_OK;
    bool known = r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH;
    for (size_t i = 0; i < N_KEY_TYPES && !known; i++) known = known_with(t, kh, &key_types[i]);
    if (r == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND && !known) return record_host(t, kh, key, len, k, fp, err, errlen);
    char *name = known_name(t);
    if (r == LIBSSH2_KNOWNHOST_CHECK_FAILURE)
        fail(err, errlen, SW_TR_ERROR, "cannot check the host key of %s against %s", name, t->known_hosts);
    else
        fail(err, errlen, SW_TR_ERROR,
             "HOST KEY CHANGED: %s offered the %s host key %s, which is not the key %s records for "
             "it (SHELLWIRE_KNOWN_HOSTS). Refusing to connect: someone may be intercepting the "
             "connection. If the key really changed, remove the old entry with "
             "ssh-keygen -R '%s' -f %s", name, k->name, fp, t->known_hosts, name, t->known_hosts);
    free(name);
    return SW_TR_ERROR;
}

static int check_host_key(const sw_transport *t, LIBSSH2_SESSION *s, char *err, size_t errlen)
{
    /* One server thread at a time reads and appends, so two environments meeting a new
     * host together record it once. */
    pthread_mutex_lock(&g_known_mu);
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s);
    int rc = kh ? SW_TR_OK : fail(err, errlen, SW_TR_ERROR, "libssh2: cannot check host keys");
    if (kh) {
        load_known(kh, t->known_hosts);
        rc = verify_host_key(t, s, kh, err, errlen);
        libssh2_knownhost_free(kh);
    }
    pthread_mutex_unlock(&g_known_mu);
    return rc;
}

/* ---- authentication ----------------------------------------------------------------- */

/* Reads the start of a file into buf (NUL-terminated); false when unreadable. */
static bool read_head(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f) return false;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
    return got > 0;
}

/* PEM keys say ENCRYPTED; an OpenSSH-format key names its cipher right after the magic
 * ("openssh-key-v1\0" then the length and "none" encode to the prefix below). */
static bool key_encrypted(const char *path)
{
    char head[512];
    if (!read_head(path, head, sizeof head)) return false;
    if (strstr(head, "ENCRYPTED")) return true;
    return strstr(head, "b3BlbnNzaC1rZXktdjEA") && !strstr(head, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU");
}

static bool key_is_rsa(const char *path)
{
    char head[64];
    char *pub = sw_printf("%s.pub", path);
    bool rsa = (read_head(path, head, sizeof head) && strstr(head, "BEGIN RSA")) ||
               (read_head(pub, head, sizeof head) && !strncmp(head, "ssh-rsa ", 8));
    free(pub);
    return rsa;
}

static int auth_key(sw_transport *t, conn *c, const char *offered, char *err, size_t errlen)
{
    int rc = libssh2_userauth_publickey_fromfile_ex(c->s, t->user, (unsigned)strlen(t->user), NULL,
                                                     t->key, t->pass);
    if (rc == 0) return SW_TR_OK;
    if (rc == LIBSSH2_ERROR_FILE && t->pass)
        return fail(err, errlen, SW_TR_ERROR, "cannot unlock the ssh key %s (TERMINAL_SSH_KEY) with "
                    "TERMINAL_SSH_KEY_PASSPHRASE: wrong passphrase, or a key format libssh2 cannot "
                    "read (%s)", t->key, ssh_error(c->s));
    if (rc == LIBSSH2_ERROR_FILE && key_encrypted(t->key))
        return fail(err, errlen, SW_TR_ERROR, "the ssh key %s (TERMINAL_SSH_KEY) is encrypted: set "
                    "TERMINAL_SSH_KEY_PASSPHRASE", t->key);
    if (rc == LIBSSH2_ERROR_FILE)
        return fail(err, errlen, SW_TR_ERROR, "cannot load the ssh key %s (TERMINAL_SSH_KEY): %s",
                    t->key, ssh_error(c->s));
    if (conn_fatal(c, rc))
        return fail(err, errlen, SW_TR_DEGRADED, "ssh authentication with %s broke off: %s",
                    t->where, conn_why(c));
    return fail(err, errlen, SW_TR_ERROR, "ssh authentication as %s failed: %s refused the key %s "
                "(tried: publickey with TERMINAL_SSH_KEY=%s; the server accepts: %s)%s", t->user,
                t->where, t->key, t->key, offered, key_is_rsa(t->key) ? RSA_HINT : "");
}

static bool identity_is_rsa(const struct libssh2_agent_publickey *id)
{
    return id->blob_len > 11 && !memcmp(id->blob, "\0\0\0\7ssh-rsa", 11);
}

/* Tries every identity of the agent; *tried counts them, *rsa tells whether one was RSA. */
static int agent_try(conn *c, LIBSSH2_AGENT *a, const char *user, int *tried, bool *rsa)
{
    struct libssh2_agent_publickey *id = NULL, *prev = NULL;
    int rc;
    while ((rc = libssh2_agent_get_identity(a, &id, prev)) == 0) {
        (*tried)++;
        *rsa = *rsa || identity_is_rsa(id);
        rc = libssh2_agent_userauth(a, user, id);
        if (rc == 0 || conn_fatal(c, rc)) return rc;
        prev = id;
    }
    return rc == 1 ? LIBSSH2_ERROR_AUTHENTICATION_FAILED : rc;
}

static int auth_agent(sw_transport *t, conn *c, const char *offered, char *err, size_t errlen)
{
    const char *sock = getenv("SSH_AUTH_SOCK");
    if (!sock || !*sock)
        return fail(err, errlen, SW_TR_ERROR, "no ssh key to log in to %s with: set TERMINAL_SSH_KEY "
                    "to a private key file, or run ssh-agent (SSH_AUTH_SOCK is not set)", t->where);
    LIBSSH2_AGENT *a = libssh2_agent_init(c->s);
    if (!a) return fail(err, errlen, SW_TR_ERROR, "libssh2: cannot use ssh-agent");
    int tried = 0, rc;
    bool rsa = false;
    if (libssh2_agent_connect(a) != 0) {
        rc = fail(err, errlen, SW_TR_ERROR, "cannot reach ssh-agent at %s (SSH_AUTH_SOCK): %s", sock,
                  ssh_error(c->s));
        libssh2_agent_free(a);
        return rc;
    }
    bool listed = libssh2_agent_list_identities(a) == 0;
    rc = listed ? agent_try(c, a, t->user, &tried, &rsa) : LIBSSH2_ERROR_AGENT_PROTOCOL;
    /* The agent's socket is not close-on-exec: let it go at once. */
    libssh2_agent_disconnect(a);
    libssh2_agent_free(a);
    if (rc == 0) return SW_TR_OK;
    if (conn_fatal(c, rc))
        return fail(err, errlen, SW_TR_DEGRADED, "ssh authentication with %s broke off: %s",
                    t->where, conn_why(c));
    if (!listed)
        return fail(err, errlen, SW_TR_ERROR, "cannot list the keys of ssh-agent at %s "
                    "(SSH_AUTH_SOCK): %s", sock, ssh_error(c->s));
    if (!tried)
        return fail(err, errlen, SW_TR_ERROR, "ssh-agent (SSH_AUTH_SOCK=%s) holds no keys: add one "
                    "with ssh-add, or set TERMINAL_SSH_KEY", sock);
    return fail(err, errlen, SW_TR_ERROR, "ssh authentication as %s failed: %s refused all %d key%s "
                "of ssh-agent (tried: publickey with the agent's keys, no TERMINAL_SSH_KEY set; the "
                "server accepts: %s)%s", t->user, t->where, tried, tried == 1 ? "" : "s", offered,
                rsa ? RSA_HINT : "");
}

static int authenticate(sw_transport *t, conn *c, char *err, size_t errlen)
{
    const char *list = libssh2_userauth_list(c->s, t->user, (unsigned)strlen(t->user));
    if (!list) {
        if (libssh2_userauth_authenticated(c->s)) return SW_TR_OK;
        return fail(err, errlen, SW_TR_DEGRADED, "ssh authentication with %s broke off: %s",
                    t->where, conn_why(c));
    }
    char *offered = sw_strdup(list);   /* the session's copy changes with the next call */
    int rc;
    if (!strstr(offered, "publickey"))
        rc = fail(err, errlen, SW_TR_ERROR, "%s does not accept public keys for %s (it accepts: %s); "
                  "shellwire logs in with TERMINAL_SSH_KEY or ssh-agent only", t->where, t->user,
                  offered);
    else
        rc = t->key ? auth_key(t, c, offered, err, errlen) : auth_agent(t, c, offered, err, errlen);
    free(offered);
    return rc;
}

/* ---- setting up a conn (blocking, in the caller's thread) ------------------------------ */

/* Each blocking step may use what is left of the connect budget. */
static int budget(conn *c, int64_t until, const sw_transport *t, char *err, size_t errlen)
{
    int64_t left = until - sw_now_ms();
    if (left <= 0)
        return fail(err, errlen, SW_TR_DEGRADED, "%s did not complete the ssh login within the "
                    "connect timeout", t->where);
    libssh2_session_set_timeout(c->s, (long)left);
    return SW_TR_OK;
}

static int ssh_setup(sw_transport *t, conn *c, int64_t until, char *err, size_t errlen)
{
    c->s = libssh2_session_init_ex(NULL, NULL, NULL, c);
    if (!c->s) return fail(err, errlen, SW_TR_ERROR, "libssh2: cannot create a session");
    libssh2_session_callback_set(c->s, LIBSSH2_CALLBACK_RECV, (void *)sock_recv);
    libssh2_session_callback_set(c->s, LIBSSH2_CALLBACK_SEND, (void *)sock_send);
    prefer_known_types(t, c->s);
    libssh2_session_set_blocking(c->s, 1);
    int rc = budget(c, until, t, err, errlen);
    if (rc) return rc;
    if (libssh2_session_handshake(c->s, c->fd) != 0)
        return fail(err, errlen, SW_TR_DEGRADED, "ssh handshake with %s failed: %s", t->where,
                    conn_why(c));
    if ((rc = check_host_key(t, c->s, err, errlen)) || (rc = budget(c, until, t, err, errlen)) ||
        (rc = authenticate(t, c, err, errlen)))
        return rc;
    libssh2_keepalive_config(c->s, 1, KEEPALIVE_S);
    libssh2_session_set_timeout(c->s, 0);
    libssh2_session_set_blocking(c->s, 0);
    return SW_TR_OK;
}

/* Ends a conn within a bounded time: after shutdown() no libssh2 call can wait. */
static void conn_free(conn *c, bool polite)
{
    if (c->s) {
        if (polite) libssh2_session_disconnect(c->s, "shellwire closes the environment");
        shutdown(c->fd, SHUT_RDWR);
        for (int i = 0; i < 10 && libssh2_session_free(c->s) == LIBSSH2_ERROR_EAGAIN; i++) {}
    }
    while (c->chans) {
        chan *h = c->chans;
        c->chans = h->next;
        free(h);
    }
    if (c->fd >= 0) close(c->fd);
    free(c);
}

static int conn_open(sw_transport *t, int64_t until, conn **out, char *err, size_t errlen)
{
    conn *c = sw_xcalloc(1, sizeof *c);
    c->fd = -1;
    int rc = tcp_connect(t, until, &c->fd, err, errlen);
    if (rc == SW_TR_OK) rc = ssh_setup(t, c, until, err, errlen);
    if (rc != SW_TR_OK) {
        conn_free(c, false);
        return rc;
    }
    c->last_rx = sw_now_ms();
    *out = c;
    return SW_TR_OK;
}

/* ---- jobs and channels (under t->mu) ------------------------------------------------ */

static void job_signal(job *j)
{
    uint64_t one = 1;
    if (write(j->efd, &one, sizeof one) < 0) { /* counter full: already readable */ }
}

static void job_finish(job *j, int rc, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void job_finish(job *j, int rc, int status, const char *fmt, ...)
{
    j->done = true;
    j->rc = rc;
    j->status = status;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, sizeof j->err, fmt, ap);
        va_end(ap);
    }
    if (j->h) j->h->j = NULL;
    j->h = NULL;
    job_signal(j);
}

static void chan_new(conn *c, job *j)
{
    chan *h = sw_xcalloc(1, sizeof *h);
    h->c = c;
    h->st = CH_WAIT;
    h->j = j;
    if (j) j->h = h;
    h->next = c->chans;
    c->chans = h;
    c->nchans++;
}

static void chan_remove(chan *h)
{
    conn *c = h->c;
    chan **pp = &c->chans;
    while (*pp != h) pp = &(*pp)->next;
    *pp = h->next;
    c->nchans--;
    c->full = false;
    if (c->opening == h) c->opening = NULL;
    free(h);
}

static bool is_spare(const chan *h) { return !h->j && h->st <= CH_IDLE; }

/* The spare closest to running a script: a ready one if there is one. */
static chan *best_spare(sw_transport *t)
{
    chan *best = NULL;
    for (conn *c = t->conns; c; c = c->next)
        for (chan *h = c->chans; h; h = h->next)
            if (is_spare(h) && (!best || h->ready * 16 + h->st > best->ready * 16 + best->st)) best = h;
    return best;
}

static conn *conn_with_room(sw_transport *t)
{
    conn *best = NULL;
    for (conn *c = t->conns; c; c = c->next)
        if (!c->full && c->nchans < CONN_CHANNELS && (!best || c->nchans < best->nchans)) best = c;
    return best;
}

static bool has_room(sw_transport *t) { return best_spare(t) || conn_with_room(t); }

/* Puts a job on a spare or a new channel; false when every slot is taken. */
static bool job_place(sw_transport *t, job *j)
{
    chan *h = best_spare(t);
    if (h) {
        h->j = j;
        j->h = h;
        if (h->st == CH_IDLE) h->st = CH_WRITE;
        return true;
    }
    conn *c = conn_with_room(t);
    if (!c) return false;
    chan_new(c, j);
    return true;
}

static void queue_add(sw_transport *t, job *j, bool front)
{
    job **pp = &t->queue;
    while (!front && *pp) pp = &(*pp)->next;
    j->next = *pp;
    *pp = j;
}

static void queue_remove(sw_transport *t, job *j)
{
    for (job **pp = &t->queue; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            return;
        }
}

static bool drain_queue(sw_transport *t)
{
    bool moved = false;
    while (t->queue && job_place(t, t->queue)) {
        t->queue = t->queue->next;
        moved = true;
    }
    return moved;
}

static void keep_spares(sw_transport *t)
{
    if (t->queue || t->spare_deaths >= SPARE_DEATHS_MAX) return;
    int n = 0;
    for (conn *c = t->conns; c; c = c->next)
        for (chan *h = c->chans; h; h = h->next) n += is_spare(h);
    for (conn *c; n < SPARES && (c = conn_with_room(t)); n++) chan_new(c, NULL);
}

/* ---- driving a channel (I/O thread, under t->mu) ------------------------------------ */

static void etail_add(chan *h, const char *p, size_t n)
{
    if (n >= ERR_TAIL) {
        p += n - ERR_TAIL;
        n = ERR_TAIL;
    }
    if (h->elen + n > ERR_TAIL) {
        size_t drop = h->elen + n - ERR_TAIL;
        memmove(h->etail, h->etail + drop, h->elen - drop);
        h->elen -= drop;
    }
    memcpy(h->etail + h->elen, p, n);
    h->elen += n;
}

static void job_append(job *j, const char *p, size_t n)
{
    if (j->blen + n > j->bcap) {
        j->bcap = (j->blen + n) * 2;
        j->buf = sw_xrealloc(j->buf, j->bcap);
    }
    memcpy(j->buf + j->blen, p, n);
    j->blen += n;
    job_signal(j);
}

/* stdout bytes: what precedes the ready line is the login shell's, the rest the job's. */
static void chan_data(chan *h, const char *p, size_t n)
{
    static const size_t rlen = sizeof READY - 1;
    while (!h->ready && n) {
        char ch = *p++;
        n--;
        if (ch == READY[h->matched]) h->matched++;
        else h->matched = ch == READY[0];
        h->ready = h->matched == rlen;
    }
    if (n && h->j) job_append(h->j, p, n);
}

/* A channel-level failure: the conn's if fatal, else this channel just ends. */
static int chan_error(chan *h, int rc)
{
    if (conn_fatal(h->c, rc)) return rc;
    sw_debug("ssh: a channel failed: %s", ssh_error(h->c->s));
    h->st = CH_CLOSE;
    return STEP_MOVED;
}

static int chan_read(sw_transport *t, chan *h)
{
    char buf[READ_CHUNK];
    ssize_t n = LIBSSH2_ERROR_EAGAIN;
    while (!(h->j && h->j->blen >= JOB_BUF_MAX) &&
           (n = libssh2_channel_read_ex(h->ch, 0, buf, sizeof buf)) > 0)
        chan_data(h, buf, (size_t)n);
    if (h->j && h->j->blen >= JOB_BUF_MAX) h->j->paused = true;
    if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) return chan_error(h, (int)n);
    while ((n = libssh2_channel_read_ex(h->ch, SSH_EXTENDED_DATA_STDERR, buf, sizeof buf)) > 0)
        etail_add(h, buf, (size_t)n);
    if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) return chan_error(h, (int)n);
    if (!libssh2_channel_eof(h->ch)) return STEP_BLOCKED;
    if (!h->j && h->st == CH_IDLE) {
        /* A spare ended before it was used: its bash could not start or was killed. */
        t->spare_deaths++;
        sw_warn("ssh: a waiting shell on %s ended%s%.*s", t->where, h->elen ? ": " : "",
                (int)h->elen, h->etail);
    }
    h->st = CH_CLOSE;
    return STEP_MOVED;
}

static int chan_write(chan *h)
{
    job *j = h->j;
    while (j->off < j->len) {
        ssize_t n = libssh2_channel_write(h->ch, j->script + j->off, j->len - j->off);
        if (n == LIBSSH2_ERROR_EAGAIN) return STEP_BLOCKED;
        if (n < 0) return chan_error(h, (int)n);
        j->off += (size_t)n;
    }
    h->st = CH_EOF;
    return STEP_MOVED;
}

static int chan_send_eof(chan *h)
{
    int rc = libssh2_channel_send_eof(h->ch);
    if (rc == LIBSSH2_ERROR_EAGAIN) return STEP_BLOCKED;
    if (rc) return chan_error(h, rc);
    h->j->started = true;
    h->st = CH_RUN;
    return STEP_MOVED;
}

/* Reads, then writes the script and EOF when it is this channel's turn. */
static int chan_io(sw_transport *t, chan *h)
{
    int st = h->st;
    int rc = chan_read(t, h);
    if (rc < 0 || h->st == CH_CLOSE) return rc;
    if (h->st == CH_WRITE) rc = chan_write(h);
    if (rc >= 0 && h->st == CH_EOF) rc = chan_send_eof(h);
    return rc < 0 ? rc : h->st != st ? STEP_MOVED : STEP_BLOCKED;
}

static int signal_number(const char *name)
{
    for (int i = 1; i < NSIG; i++) {
        const char *abbrev = sigabbrev_np(i);
        if (abbrev && !strcmp(abbrev, name)) return i;
    }
    return 0;
}

/* The exit status once the channel is closed: 128+N when a signal N ended the shell. */
static int exit_status(chan *h)
{
    char *sig = NULL;
    size_t siglen = 0;
    if (libssh2_channel_get_exit_signal(h->ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 && sig) {
        int n = signal_number(sig);
        libssh2_free(h->c->s, sig);
        return 128 + n;
    }
    return libssh2_channel_get_exit_status(h->ch);
}

static void chan_report(sw_transport *t, chan *h)
{
    job *j = h->j;
    int status = exit_status(h);
    if (h->ready) {
        t->spare_deaths = 0;
        job_finish(j, SW_TR_OK, status, NULL);
    } else {
        job_finish(j, SW_TR_ERROR, status, "%s did not start bash for the command (exit status "
                   "%d)%s%.*s", t->where, status, h->elen ? ": " : "", (int)h->elen, h->etail);
    }
}

/* Closes (waiting for the server's close, after which the exit status is known), reports,
 * frees. */
static int chan_close(sw_transport *t, chan *h)
{
    if (h->st == CH_CLOSE) {
        int rc = libssh2_channel_close(h->ch);
        if (rc == LIBSSH2_ERROR_EAGAIN) return STEP_BLOCKED;
        if (rc && conn_fatal(h->c, rc)) return rc;
        if (h->j) chan_report(t, h);
        h->st = CH_FREE;
    }
    if (libssh2_channel_free(h->ch) == LIBSSH2_ERROR_EAGAIN) return STEP_BLOCKED;
    chan_remove(h);
    return STEP_GONE;
}

/* The server refused a channel: at its limit when others are open (requeue the job and
 * ask this conn for no more until one of its channels ends), else a real refusal. */
static int open_failed(sw_transport *t, chan *h, int rc)
{
    conn *c = h->c;
    job *j = h->j;
    if (conn_fatal(c, rc)) return rc;
    int open = 0;
    for (chan *o = c->chans; o; o = o->next) open += o->ch != NULL;
    if (rc == LIBSSH2_ERROR_CHANNEL_FAILURE && open > 0) {
        sw_debug("ssh: %s refused channel %d of a connection; waiting for one to end", t->where,
                 open + 1);
        c->full = true;
        if (j) {
            j->h = NULL;
            queue_add(t, j, true);
        }
    } else if (j) {
        job_finish(j, SW_TR_ERROR, -1, "%s refused to open a channel: %s", t->where, ssh_error(c->s));
    } else {
        t->spare_deaths++;
    }
    chan_remove(h);
    return STEP_GONE;
}

static int start_failed(sw_transport *t, chan *h, int rc)
{
    if (conn_fatal(h->c, rc)) return rc;
    if (h->j)
        job_finish(h->j, SW_TR_ERROR, -1, "%s refused to run a command: %s", t->where,
                   ssh_error(h->c->s));
    else
        t->spare_deaths++;
    h->st = CH_CLOSE;
    return STEP_MOVED;
}

/* Advances a channel one step without blocking. Returns STEP_*, or a libssh2 error that
 * ends the whole conn. */
static int chan_step(sw_transport *t, chan *h)
{
    conn *c = h->c;
    switch (h->st) {
    case CH_WAIT:
        if (c->opening) return STEP_BLOCKED;
        c->opening = h;
        h->st = CH_OPEN;
        return STEP_MOVED;
    case CH_OPEN:
        h->ch = libssh2_channel_open_session(c->s);
        if (!h->ch) {
            int rc = libssh2_session_last_errno(c->s);
            if (rc == LIBSSH2_ERROR_EAGAIN) return STEP_BLOCKED;
            c->opening = NULL;
            return open_failed(t, h, rc);
        }
        c->opening = NULL;
        h->st = CH_START;
        return STEP_MOVED;
    case CH_START: {
        int rc = libssh2_channel_exec(h->ch, START_CMD);
        if (rc == LIBSSH2_ERROR_EAGAIN) return STEP_BLOCKED;
        if (rc) return start_failed(t, h, rc);
        h->st = h->j ? CH_WRITE : CH_IDLE;
        return STEP_MOVED;
    }
    case CH_CLOSE:
    case CH_FREE:
        return chan_close(t, h);
    default:
        return chan_io(t, h);
    }
}

/* ---- the I/O thread ----------------------------------------------------------------- */

static void conn_fail(sw_transport *t, conn *c, const char *why)
{
    snprintf(t->conn_err, sizeof t->conn_err, "the connection to %s was lost: %s", t->where, why);
    sw_warn("ssh: %s", t->conn_err);
    for (chan *h = c->chans; h; h = h->next)
        if (h->j) job_finish(h->j, SW_TR_DEGRADED, -1, "%s", t->conn_err);
    conn **pp = &t->conns;
    while (*pp != c) pp = &(*pp)->next;
    *pp = c->next;
    t->nconns--;
    conn_free(c, false);
    while (!t->nconns && t->queue) {
        job *j = t->queue;
        t->queue = j->next;
        job_finish(j, SW_TR_DEGRADED, -1, "%s", t->conn_err);
    }
}

/* Steps every channel of c until none moves; false when the conn failed (and is gone). */
static bool conn_pump(sw_transport *t, conn *c, bool *moved)
{
    for (chan *h = c->chans, *next; h; h = next) {
        next = h->next;
        int rc;
        while ((rc = chan_step(t, h)) == STEP_MOVED) *moved = true;
        if (rc == STEP_GONE) *moved = true;
        if (rc < 0) {
            conn_fail(t, c, conn_why(c));
            *moved = true;
            return false;
        }
    }
    return true;
}

/* Keepalives and the silence check; returns the ms until the next keepalive is due. */
static int conn_watch(sw_transport *t, conn *c, int64_t now)
{
    int next_s = KEEPALIVE_S;
    /* Only channels read the socket; without any, unread answers are not silence. */
    if (!c->chans) c->last_rx = now;
    if (libssh2_keepalive_send(c->s, &next_s) != 0) {
        conn_fail(t, c, conn_why(c));
        return 0;
    }
    if (now - c->last_rx > DEAD_AFTER_MS) {
        char why[96];
        snprintf(why, sizeof why, "no answer from the server for %d s", DEAD_AFTER_MS / 1000);
        conn_fail(t, c, why);
        return 0;
    }
    return next_s > 0 ? next_s * 1000 : 50;
}

/* Does everything that can be done now; returns the poll timeout. */
static int pump(sw_transport *t)
{
    for (int round = 0; round < 64; round++) {
        bool moved = drain_queue(t);
        keep_spares(t);
        for (conn *c = t->conns, *next; c; c = next) {
            next = c->next;
            conn_pump(t, c, &moved);
        }
        if (!moved) break;
    }
    int timeout = 1000;
    int64_t now = sw_now_ms();
    for (conn *c = t->conns, *next; c; c = next) {
        next = c->next;
        int ms = conn_watch(t, c, now);
        if (ms < timeout) timeout = ms;
    }
    return timeout;
}

static void *io_main(void *arg)
{
    sw_transport *t = arg;
    struct pollfd pf[1 + MAX_CONNS];
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        int timeout = pump(t);
        nfds_t n = 0;
        pf[n++] = (struct pollfd){.fd = t->wake, .events = POLLIN};
        for (conn *c = t->conns; c && n < 1 + MAX_CONNS; c = c->next) {
            int dir = libssh2_session_block_directions(c->s);
            short ev = c->chans || (dir & LIBSSH2_SESSION_BLOCK_INBOUND) ? POLLIN : 0;
            if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND) ev |= POLLOUT;
            pf[n++] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        pthread_mutex_unlock(&t->mu);
        if (poll(pf, n, timeout) > 0 && pf[0].revents) drain_fd(t->wake);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* ---- exec (caller threads) ---------------------------------------------------------- */

static void cond_wait_until(sw_transport *t, int64_t until_ms)
{
    int64_t left = until_ms - sw_now_ms();
    if (left <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

/* Makes sure a conn exists, and opens one more when every slot is taken (up to MAX_CONNS).
 * One thread connects at a time; the others wait for its result when there is no conn. */
static int ensure_conn(sw_transport *t, int64_t deadline, char *err, size_t errlen)
{
    int64_t until = sw_now_ms() + t->connect_ms;
    if (deadline && deadline < until) until = deadline;
    pthread_mutex_lock(&t->mu);
    unsigned long seen = t->attempts;
    while (t->connecting && !t->nconns && sw_now_ms() < until) cond_wait_until(t, until);
    int rc = SW_TR_OK;
    if (!t->nconns && (t->attempts != seen || t->connecting)) {
        rc = t->attempts != seen ? t->conn_rc : SW_TR_DEGRADED;
        fail(err, errlen, rc, "%s", t->attempts != seen ? t->conn_err : "timed out waiting for the "
             "ssh connection");
    }
    bool need = rc == SW_TR_OK &&
                (!t->nconns || (!has_room(t) && !t->connecting && t->nconns < MAX_CONNS));
    if (need) t->connecting = true;
    pthread_mutex_unlock(&t->mu);
    if (!need) return rc;
    conn *c = NULL;
    rc = conn_open(t, until, &c, err, errlen);
    pthread_mutex_lock(&t->mu);
    t->connecting = false;
    t->attempts++;
    if (c) {
        c->next = t->conns;
        t->conns = c;
        t->nconns++;
        t->conn_rc = SW_TR_OK;
    } else {
        t->conn_rc = rc;
        snprintf(t->conn_err, sizeof t->conn_err, "%s", err);
    }
    bool have = t->nconns > 0;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    wake_io(t);
    if (rc != SW_TR_OK && have) {
        sw_warn("ssh: could not open another connection to %s: %s", t->where, err);
        rc = SW_TR_OK;
    }
    return rc;
}

static void job_submit(sw_transport *t, job *j)
{
    pthread_mutex_lock(&t->mu);
    j->done = j->paused = false;
    j->off = 0;
    if (!job_place(t, j)) queue_add(t, j, false);
    pthread_mutex_unlock(&t->mu);
    wake_io(t);
}

/* Detaches the job from the I/O thread. A channel that has not received any of the script
 * becomes a spare again; one that has is closed (a command still running there is the
 * remote layer's to kill). */
static void job_release(sw_transport *t, job *j)
{
    pthread_mutex_lock(&t->mu);
    chan *h = j->h;
    if (h) {
        h->j = NULL;
        j->h = NULL;
        if (h->st == CH_WRITE && j->off == 0) h->st = CH_IDLE;
        else if (h->st > CH_IDLE && h->st < CH_CLOSE) h->st = CH_CLOSE;
    } else if (!j->done) {
        queue_remove(t, j);
    }
    pthread_mutex_unlock(&t->mu);
    wake_io(t);
}

/* Passes output on until the job is done, out() asks to stop, the deadline passes or the
 * cancel fd fires. */
static int job_wait(sw_transport *t, job *j, const sw_exec_req *req, int64_t deadline)
{
    char *buf = NULL;
    size_t cap = 0;
    int64_t next_tick = sw_now_ms() + 1000;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        char *got = j->buf;
        size_t len = j->blen, gotcap = j->bcap;
        j->buf = buf;
        j->bcap = cap;
        j->blen = 0;
        buf = got;
        cap = gotcap;
        bool done = j->done, resume = j->paused;
        j->paused = false;
        pthread_mutex_unlock(&t->mu);
        if (resume) wake_io(t);
        if (len && req->out(req->ctx, buf, len)) break;
        if (done) {
            free(buf);
            return j->rc;
        }
        if (req->cancel && sw_cancel_fired(req->cancel)) break;
        int64_t now = sw_now_ms();
        if (deadline && now >= deadline) break;
        if (now >= next_tick) {
            if (req->tick) req->tick(req->ctx);
            next_tick = now + 1000;
        }
        int64_t wait = next_tick - now;
        if (deadline && deadline - now < wait) wait = deadline - now;
        struct pollfd pf[2] = {{.fd = j->efd, .events = POLLIN},
                               {.fd = req->cancel ? req->cancel->fd : -1, .events = POLLIN}};
        if (poll(pf, 2, (int)wait) > 0 && pf[0].revents) drain_fd(j->efd);
    }
    free(buf);
    return SW_TR_INTERRUPTED;
}

static int tr_exec(sw_transport *t, const sw_exec_req *req, int *exit_code, char *err, size_t errlen)
{
    int64_t deadline = req->timeout_ms > 0 ? sw_now_ms() + req->timeout_ms : 0;
    job j = {.script = req->script, .len = strlen(req->script)};
    j.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (j.efd < 0) return fail(err, errlen, SW_TR_ERROR, "eventfd: %s", strerror(errno));
    int rc;
    for (int attempt = 0;; attempt++) {
        rc = ensure_conn(t, deadline, err, errlen);
        if (rc != SW_TR_OK) break;
        job_submit(t, &j);
        rc = job_wait(t, &j, req, deadline);
        job_release(t, &j);
        /* A conn that died before the script was sent: nothing ran, so try once more. */
        if (rc != SW_TR_DEGRADED || j.started || attempt > 0) break;
    }
    if (rc == SW_TR_OK) *exit_code = j.status;
    else if (rc != SW_TR_INTERRUPTED && j.done) snprintf(err, errlen, "%s", j.err);
    close(j.efd);
    free(j.buf);
    return rc;
}

/* ---- the transport ------------------------------------------------------------------ */

static char *home_dir(void)
{
    const char *home = getenv("HOME");
    if (!home || home[0] != '/') {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : "/";
    }
    return sw_strdup(home);
}

/* "~" and "~/..." are this host's home (the key and known_hosts files are local). */
static char *expand_home(const char *path)
{
    if (path[0] != '~' || (path[1] && path[1] != '/')) return sw_strdup(path);
    char *home = home_dir();
    char *out = sw_printf("%s%s", home, path + 1);
    free(home);
    return out;
}

static void transport_free(sw_transport *t)
{
    while (t->conns) {
        conn *c = t->conns;
        t->conns = c->next;
        conn_free(c, true);
    }
    if (t->wake >= 0) close(t->wake);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->host);
    free(t->user);
    free(t->key);
    free(t->pass);
    free(t->known_hosts);
    free(t->where);
    free(t);
}

static sw_transport *transport_new(const sw_config *cfg, int connect_ms)
{
    sw_transport *t = sw_xcalloc(1, sizeof *t);
    t->host = sw_strdup(cfg->ssh_host);
    t->user = sw_strdup(cfg->ssh_user);
    t->port = (int)cfg->ssh_port;
    t->key = cfg->ssh_key && *cfg->ssh_key ? expand_home(cfg->ssh_key) : NULL;
    t->pass = cfg->ssh_key_passphrase && *cfg->ssh_key_passphrase ? sw_strdup(cfg->ssh_key_passphrase) : NULL;
    t->known_hosts = expand_home(cfg->known_hosts && *cfg->known_hosts ? cfg->known_hosts
                                                                       : "~/.ssh/known_hosts");
    t->where = t->port == 22 ? sw_printf("%s@%s", t->user, t->host)
                             : sw_printf("%s@%s:%d", t->user, t->host, t->port);
    t->connect_ms = connect_ms > 0 ? connect_ms : DEFAULT_CONNECT_MS;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return t;
}

/* Configuration errors, before anything goes over the network. */
static int check_config(const sw_config *cfg, char *err, size_t errlen)
{
    if (!cfg || !cfg->ssh_host || !*cfg->ssh_host)
        return fail(err, errlen, SW_TR_ERROR, "the ssh backend needs TERMINAL_SSH_HOST (the host to "
                    "run commands on)");
    if (!cfg->ssh_user || !*cfg->ssh_user)
        return fail(err, errlen, SW_TR_ERROR, "the ssh backend needs TERMINAL_SSH_USER (USER is not "
                    "set either)");
    if (!cfg->ssh_key || !*cfg->ssh_key) return SW_TR_OK;
    char *key = expand_home(cfg->ssh_key);
    char c;
    int fd = open(key, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, &c, 1);
    int e = errno;
    if (fd >= 0) close(fd);
    int rc = n > 0 ? SW_TR_OK
                   : fail(err, errlen, SW_TR_ERROR, "cannot read the ssh key %s (TERMINAL_SSH_KEY): %s",
                          key, n == 0 ? "the file is empty" : strerror(e));
    free(key);
    return rc;
}

static int tr_connect(const sw_open_opts *o, sw_transport **out, char *err, size_t errlen)
{
    int rc = check_config(o->config, err, errlen);
    if (rc != SW_TR_OK) return rc;
    pthread_once(&g_once, global_init);
    if (g_init_rc != 0) return fail(err, errlen, SW_TR_ERROR, "libssh2 could not initialise");
    sw_transport *t = transport_new(o->config, o->connect_timeout_ms);
    if (t->wake < 0) rc = fail(err, errlen, SW_TR_ERROR, "eventfd: %s", strerror(errno));
    if (rc == SW_TR_OK) rc = ensure_conn(t, 0, err, errlen);
    if (rc == SW_TR_OK) {
        if (pthread_create(&t->io, NULL, io_main, t) != 0)
            rc = fail(err, errlen, SW_TR_ERROR, "cannot start the ssh I/O thread");
        t->io_started = rc == SW_TR_OK;
    }
    if (rc != SW_TR_OK) {
        transport_free(t);
        return rc;
    }
    *out = t;
    return SW_TR_OK;
}

/* The remote layer calls this (with no exec running) after an exec answered DEGRADED:
 * the I/O thread has dropped the dead conn by then, so this opens a new one. */
static int tr_reconnect(sw_transport *t, char *err, size_t errlen)
{
    return ensure_conn(t, 0, err, errlen);
}

static void tr_close(sw_transport *t)
{
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_mutex_unlock(&t->mu);
    wake_io(t);
    if (t->io_started) pthread_join(t->io, NULL);
    transport_free(t);
}

static const sw_transport_ops transport = {
    .name = "ssh", .connect = tr_connect, .exec = tr_exec, .reconnect = tr_reconnect,
    .close = tr_close,
};

static int ssh_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    return sw_remote_open(&transport, o, out, err, errlen);
}

const sw_backend_ops sw_ssh_ops = SW_REMOTE_OPS("ssh", false, ssh_open);
