/* backends/docker_stream.c — see docker_stream.h. */
#include "backends/docker_stream.h"

#include <string.h>

#define STREAM_BAD (-1)

int sw_dstream_feed(sw_dstream *d, const char *buf, size_t len, sw_dstream_emit emit, void *ctx)
{
    while (len > 0) {
        if (d->stream == STREAM_BAD) return SW_DSTREAM_BAD;
        if (d->left == 0) {
            size_t take = sizeof d->hdr - d->hdr_len;
            if (take > len) take = len;
            memcpy(d->hdr + d->hdr_len, buf, take);
            d->hdr_len += take;
            buf += take;
            len -= take;
            if (d->hdr_len < sizeof d->hdr) return 0;
            const unsigned char *h = d->hdr;
            d->hdr_len = 0;
            if (h[0] > 2 || h[1] || h[2] || h[3]) {
                d->stream = STREAM_BAD;
                return SW_DSTREAM_BAD;
            }
            d->stream = h[0];
            d->left = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
            continue;
        }
        size_t n = len < d->left ? len : d->left;
        d->left -= (uint32_t)n;
        int rc = emit(ctx, d->stream, buf, n);
        if (rc) return rc;
        buf += n;
        len -= n;
    }
    return d->stream == STREAM_BAD ? SW_DSTREAM_BAD : 0;
}
