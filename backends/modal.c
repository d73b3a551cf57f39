/* backends/modal.c — the modal transport (not built yet). */
#include <stdio.h>

#include "backends/remote.h"

static int tr_connect(const sw_open_opts *o, sw_transport **out, char *err, size_t errlen)
{
    (void)o;
    (void)out;
    snprintf(err, errlen, "the modal backend is not available in this build yet");
    return SW_TR_ERROR;
}

static int tr_exec(sw_transport *t, const sw_exec_req *req, int *exit_code, char *err, size_t errlen)
{
    (void)t; (void)req; (void)exit_code; (void)err; (void)errlen;
    return SW_TR_ERROR;
}

static void tr_close(sw_transport *t) { (void)t; }

static const sw_transport_ops transport = {
    .name = "modal", .connect = tr_connect, .exec = tr_exec, .close = tr_close,
};

static int tr_open(const sw_open_opts *o, sw_backend **out, char *err, size_t errlen)
{
    return sw_remote_open(&transport, o, out, err, errlen);
}

const sw_backend_ops sw_modal_ops = SW_REMOTE_OPS("modal", true, tr_open);
