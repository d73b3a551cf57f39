/* backends/bubblewrap.c — the local backend with every shell inside bwrap.
 *
 * Same spare shells, wrapper, snapshot and background primitives as local; only the
 * command line of each shell changes. The sandbox: read-only root, private /dev and
 * /proc, a /tmp per environment (kept between calls), its own pid/ipc/uts (and, unless
 * the profile is "network", network)
 * namespaces, the workspace (TERMINAL_CWD) writable except in the "restricted" profile,
 * the user's credential stores and shellwire's state directory hidden (only this
 * environment's own state and the background process files stay visible), and
 * --die-with-parent. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/local.h"
#include "server/config.h"
#include "server/util.h"

/* Credential stores under $HOME that commands never see. */
static const char *const secret_paths[] = {
    ".ssh", ".aws", ".azure", ".config/gcloud", ".config/gh", ".kube", ".gnupg", ".docker",
    ".netrc", ".git-credentials", ".npmrc", ".pypirc", ".config/hub", ".vault-token",
};

typedef struct argv_buf { char **v; size_t n, cap; } argv_buf;

static void add(argv_buf *a, const char *s)
{
    if (a->n + 2 > a->cap) a->v = sw_xrealloc(a->v, (a->cap = a->cap ? 2 * a->cap : 64) * sizeof *a->v);
    a->v[a->n++] = sw_strdup(s);
    a->v[a->n] = NULL;
}

static void add2(argv_buf *a, const char *x, const char *y) { add(a, x); add(a, y); }
static void add3(argv_buf *a, const char *x, const char *y, const char *z) { add(a, x); add(a, y); add(a, z); }

static const char *find_bwrap(void)
{
    static const char *const where[] = {"/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"};
    for (size_t i = 0; i < sizeof where / sizeof *where; i++)
        if (access(where[i], X_OK) == 0) return where[i];
    return NULL;
}

static int bwrap_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    const sw_config *cfg = o->config;
    const char *bwrap = find_bwrap();
    if (!bwrap) {
        snprintf(err, errlen, "the bubblewrap backend needs bwrap, which is not installed "
                              "(Debian: apt-get install bubblewrap)");
        return SW_BE_ERROR;
    }
    const char *profile = cfg ? cfg->bwrap_profile : "workspace";
    const char *workspace = o->cwd;
    argv_buf a = {0};
    add(&a, bwrap);
    add(&a, "--die-with-parent");
    add(&a, "--unshare-all");
    if (!strcmp(profile, "network")) add(&a, "--share-net");
    add3(&a, "--ro-bind", "/", "/");
    add2(&a, "--dev", "/dev");
    add2(&a, "--proc", "/proc");
    /* A private /tmp that lasts as long as the environment, shared by its calls. */
    char *tmp = sw_printf("%s/tmp", o->state_dir);
    sw_mkdir_p(tmp, 0700);
    add3(&a, "--bind", tmp, "/tmp");
    free(tmp);
    if (workspace[0] == '/' && strcmp(workspace, "/") != 0)
        add3(&a, strcmp(profile, "restricted") ? "--bind" : "--ro-bind", workspace, workspace);
    const char *home = getenv("HOME");
    for (size_t i = 0; home && home[0] == '/' && i < sizeof secret_paths / sizeof *secret_paths; i++) {
        /* Hide what the path leads to: a symlinked ~/.ssh hides its target. */
        char *p = sw_printf("%s/%s", home, secret_paths[i]);
        char *real = realpath(p, NULL);
        struct stat st;
        if (real && stat(real, &st) == 0) {
            if (S_ISDIR(st.st_mode)) add2(&a, "--tmpfs", real);
            else add3(&a, "--ro-bind", "/dev/null", real);
        }
        free(real);
        free(p);
    }
    if (cfg) {
        /* The state directory disappears except what this environment needs. */
        char *procs = sw_printf("%s/procs", cfg->state_dir);
        add2(&a, "--tmpfs", cfg->state_dir);
        add3(&a, "--bind", o->state_dir, o->state_dir);
        sw_mkdir_p(procs, 0700);
        add3(&a, "--bind", procs, procs);
        free(procs);
    }
    add(&a, "--");
    return sw_local_open_wrapped(o, a.v, out, err, errlen);
}

/* Same operations as local; only the shells' command line differs. */
const sw_backend_ops sw_bubblewrap_ops = SW_LOCAL_FAMILY_OPS("bubblewrap", bwrap_open, true);
