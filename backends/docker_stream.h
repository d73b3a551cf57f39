/* backends/docker_stream.h — the Engine API's multiplexed exec stream, decoded
 * incrementally.
 *
 * An attached exec without a TTY answers with frames: an 8-byte header (byte 0 the stream:
 * 0 stdin, 1 stdout, 2 stderr; bytes 1-3 zero; bytes 4-7 the payload length, big-endian)
 * followed by that many payload bytes. The transport hands over whatever arrived, split
 * anywhere (inside a header, inside a payload, several frames at once); the decoder keeps
 * a partial header and the payload bytes still due between calls and passes payload
 * pieces on as soon as they arrive. No allocation, no limit on frame size. */
#ifndef SW_DOCKER_STREAM_H
#define SW_DOCKER_STREAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct sw_dstream {
    unsigned char hdr[8];
    size_t hdr_len;             /* header bytes collected so far */
    uint32_t left;              /* payload bytes of the current frame still to come */
    int stream;                 /* stream of the current frame */
} sw_dstream;

/* A payload piece of `stream`; a positive return stops decoding and is passed back. */
typedef int (*sw_dstream_emit)(void *ctx, int stream, const char *buf, size_t len);

enum { SW_DSTREAM_BAD = -1 };   /* a header that is not a frame header */

/* Decodes len bytes. Returns 0 when all were consumed, the emitter's positive return when
 * it asked to stop (the rest of buf is left unread), or SW_DSTREAM_BAD; a bad decoder
 * stays bad (every later call returns SW_DSTREAM_BAD). A zero-filled sw_dstream is a
 * decoder at a frame start. */
int sw_dstream_feed(sw_dstream *d, const char *buf, size_t len, sw_dstream_emit emit, void *ctx);

#endif
