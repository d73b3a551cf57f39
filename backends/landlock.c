/* backends/landlock.c — SHELLWIRE_CONFINE=landlock: commands of the local backend start
 * through `shellwire --landlock-exec [--hide P]... [--allow P]... -- PROGRAM ARGS`, which
 * restricts itself with a Landlock ruleset and then execs PROGRAM.
 *
 * Landlock only grants; it cannot deny inside a granted tree. So the ruleset grants every
 * directory entry of the file system in full, except along the path to a hidden tree:
 * there each directory gets only READ_DIR (its names stay listable) and its other
 * entries are granted one by one, the hidden entry itself not at all; `--allow` paths
 * inside a hidden tree are granted again. One consequence: nothing new can be created
 * directly in a directory on such a path (for the default state directory: the home
 * directory itself), while everything below its other entries works as usual. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backends/local.h"
#include "server/util.h"

/* Defined here: Debian 12's kernel headers lack the newer ones. */
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_EXECUTE (1ULL << 0)
#define LL_WRITE_FILE (1ULL << 1)
#define LL_READ_FILE (1ULL << 2)
#define LL_READ_DIR (1ULL << 3)
#define LL_REFER (1ULL << 13)
#define LL_TRUNCATE (1ULL << 14)
#define LL_IOCTL_DEV (1ULL << 15)

struct ll_ruleset_attr { uint64_t handled_access_fs, handled_access_net, scoped; };
struct ll_path_beneath_attr { uint64_t allowed_access; int32_t parent_fd; } __attribute__((packed));

static uint64_t all_rights, file_rights;
static char **hide, **allow;
static size_t nhide, nallow;
static int ruleset = -1;

static void add_rule(const char *path, uint64_t rights)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) == 0) {
        struct ll_path_beneath_attr a = {
            .allowed_access = S_ISDIR(st.st_mode) ? rights : rights & file_rights,
            .parent_fd = fd,
        };
        if (a.allowed_access) syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &a, 0);
    }
    close(fd);
}

static bool listed(char **v, size_t n, const char *p)
{
    for (size_t i = 0; i < n; i++) if (!strcmp(v[i], p)) return true;
    return false;
}

/* True when p is a proper ancestor of one of the n paths v. */
static bool ancestor_of(const char *p, char **v, size_t n)
{
    size_t l = strlen(p);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(v[i], p, l) && v[i][l] == '/') return true;
    return false;
}

/* Grants what is visible below dir; `hidden` is true inside a hidden tree, where only the
 * way to allowed paths is opened. */
static void grant_dir(const char *dir, bool hidden)
{
    add_rule(dir, LL_READ_DIR);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = sw_printf("%s/%s", strcmp(dir, "/") ? dir : "", e->d_name);
        bool h = hidden || listed(hide, nhide, p);
        if (listed(allow, nallow, p)) add_rule(p, all_rights);
        else if (ancestor_of(p, allow, nallow)) grant_dir(p, h);
        else if (h) { /* hidden */ }
        else if (ancestor_of(p, hide, nhide)) grant_dir(p, false);
        else add_rule(p, all_rights);
        free(p);
    }
    closedir(d);
}

int sw_landlock_exec_main(int argc, char **argv)
{
    int i = 2;
    hide = sw_xcalloc((size_t)argc, sizeof *hide);
    allow = sw_xcalloc((size_t)argc, sizeof *allow);
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (i + 1 >= argc) break;
        char *real = realpath(argv[i + 1], NULL);
        if (!real) real = sw_strdup(argv[i + 1]);
        if (!strcmp(argv[i], "--hide")) hide[nhide++] = real;
        else if (!strcmp(argv[i], "--allow")) allow[nallow++] = real;
        else { free(real); break; }
        i++;
    }
    if (i >= argc - 1 || strcmp(argv[i], "--")) {
        fprintf(stderr, "shellwire: usage: --landlock-exec [--hide P]... [--allow P]... -- PROGRAM ARGS\n");
        return 126;
    }
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    if (abi < 1) {
        fprintf(stderr, "shellwire: Landlock is not available on this kernel (%s), so the "
                        "command was not run (SHELLWIRE_CONFINE=landlock)\n", strerror(errno));
        return 126;
    }
    all_rights = (1ULL << 13) - 1;          /* ABI 1: bits 0-12 */
    if (abi >= 2) all_rights |= LL_REFER;
    if (abi >= 3) all_rights |= LL_TRUNCATE;
    if (abi >= 5) all_rights |= LL_IOCTL_DEV;
    file_rights = all_rights & (LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV);
    struct ll_ruleset_attr attr = {.handled_access_fs = all_rights};
    ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr.handled_access_fs, 0);
    if (ruleset < 0) {
        fprintf(stderr, "shellwire: cannot create a Landlock ruleset: %s\n", strerror(errno));
        return 126;
    }
    grant_dir("/", false);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
        fprintf(stderr, "shellwire: cannot apply the Landlock ruleset: %s\n", strerror(errno));
        return 126;
    }
    close(ruleset);
    execv(argv[i + 1], argv + i + 1);
    fprintf(stderr, "shellwire: cannot run %s: %s\n", argv[i + 1], strerror(errno));
    return 127;
}

int sw_landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    return abi > 0 ? (int)abi : 0;
}

char **sw_landlock_wrap(const char *state_dir, const char *env_dir, const char *hide_paths)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return NULL;
    self[n] = '\0';
    size_t extra = 0;
    for (const char *p = hide_paths; p && *p; p++) extra += *p == ',';
    char **v = sw_xcalloc(12 + 2 * (extra + 1), sizeof *v);
    size_t k = 0;
    v[k++] = sw_strdup(self);
    v[k++] = sw_strdup("--landlock-exec");
    v[k++] = sw_strdup("--hide");
    v[k++] = sw_strdup(state_dir);
    v[k++] = sw_strdup("--allow");
    v[k++] = sw_strdup(env_dir);
    v[k++] = sw_strdup("--allow");
    v[k++] = sw_printf("%s/procs", state_dir);
    char *copy = sw_strdup(hide_paths ? hide_paths : ""), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        if (!*t) continue;
        v[k++] = sw_strdup("--hide");
        v[k++] = sw_strdup(t);
    }
    free(copy);
    v[k++] = sw_strdup("--");
    return v;
}
