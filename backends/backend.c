/* backends/backend.c — the table of backends built into this binary. */
#include <string.h>

#include "backends/backend.h"

static const sw_backend_ops *const all[] = {
    &sw_local_ops, &sw_bubblewrap_ops, &sw_ssh_ops, &sw_docker_ops, &sw_singularity_ops,
    &sw_modal_ops, &sw_daytona_ops, &sw_morph_ops,
};

const sw_backend_ops *sw_backend_find(const char *name)
{
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (!strcmp(all[i]->name, name)) return all[i];
    return NULL;
}
