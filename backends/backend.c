/* backends/backend.c — the backends of this binary. local, bubblewrap and singularity are
 * linked in; the ones that need libcurl or libssh2 (ssh, docker, modal, daytona, morph)
 * are in a module, shellwire-net.so, loaded the first time one of them is asked for: those
 * libraries and theirs would otherwise cost every start of the local default about 10 ms
 * and 6 MB. The module is looked for next to the executable (a build tree), then in
 * SW_NET_DIR (where `meson install` puts it). */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "server/log.h"

#ifndef SW_NET_DIR
#define SW_NET_DIR "/usr/local/lib/shellwire"
#endif

static const sw_backend_ops *const linked[] = {&sw_local_ops, &sw_bubblewrap_ops, &sw_singularity_ops};
static const char *const in_module[] = {"ssh", "docker", "modal", "daytona", "morph"};

static void *module;
static char module_error[512];
static pthread_once_t module_once = PTHREAD_ONCE_INIT;

static void load_module(void)
{
    char self[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) *slash = '\0';
        snprintf(path, sizeof path, "%s/shellwire-net.so", self);
        module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!module) {
        snprintf(path, sizeof path, "%s/shellwire-net.so", SW_NET_DIR);
        module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!module) snprintf(module_error, sizeof module_error, "%s", dlerror());
}

const sw_backend_ops *sw_backend_find(const char *name)
{
    for (size_t i = 0; i < sizeof linked / sizeof *linked; i++)
        if (!strcmp(linked[i]->name, name)) return linked[i];
    for (size_t i = 0; i < sizeof in_module / sizeof *in_module; i++) {
        if (strcmp(in_module[i], name) != 0) continue;
        pthread_once(&module_once, load_module);
        if (!module) {
            sw_error("the %s backend is in shellwire-net.so, which could not be loaded: %s", name,
                     module_error);
            return NULL;
        }
        char sym[64];
        snprintf(sym, sizeof sym, "sw_%s_ops", name);
        return dlsym(module, sym);
    }
    return NULL;
}
