/* ct_codec_t: turns bytes into frames and frames into bytes.
 *
 * A codec does no I/O and never allocates: the transport feeds it the bytes
 * it has, and it answers CT_CODEC_FRAME (with where the payload lies),
 * CT_CODEC_NEED_MORE, or an error. Errors are sticky: once a stream is
 * malformed, every later call returns the same error (hiredis's reader works
 * this way), because nothing after a framing error can be trusted.
 *
 * The built-in codecs are in codec/length.h and codec/line.h.
 */
#ifndef CTOWER_CODEC_H
#define CTOWER_CODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { CT_CODEC_NEED_MORE = 0, CT_CODEC_FRAME = 1, CT_CODEC_LAST = 2 };

/* Where a decoded frame lies in the bytes given to ct_codec_decode(). */
typedef struct ct_frame {
    size_t payload_offset; /* the payload starts here */
    size_t payload_len;    /* the payload's bytes */
    size_t frame_len;      /* bytes the whole frame takes: consume them */
} ct_frame_t;

typedef struct ct_codec ct_codec_t;

/* What a codec implements: decoding frames out of bytes, encoding a payload into a frame. */
typedef struct ct_codec_vtable {
    /* As ct_codec_decode(). */
    int (*decode)(ct_codec_t *codec, const uint8_t *data, size_t len, ct_frame_t *frame);
    /* As ct_codec_encode(). */
    int (*encode)(ct_codec_t *codec, const uint8_t *payload, size_t len, uint8_t *out,
                  size_t *written);
} ct_codec_vtable_t;

/* The part of every codec a transport reads: its operations, bounds and framing hints. */
struct ct_codec {
    const ct_codec_vtable_t *vtable; /* the codec's operations */
    size_t max_payload;              /* larger frames are CT_EFRAMETOOLARGE */
    size_t overhead;                 /* bytes a frame adds to its payload, at most */
    size_t size;                     /* sizeof the concrete codec, so a transport can copy it */
    /* 1 if every frame is a 4-byte big-endian payload length, then the
     * payload, with max_payload < 2^32: the common framing, which a transport
     * may then frame inline, with the same results, without the vtable. */
    int prefix_be32;
    /* Requests in flight at most whose answers the codec can frame (0: no
     * bound): an HTTP/1.1 codec must remember which requests were HEADs.
     * A stream passes it on as its transport's max_in_flight. */
    size_t max_pending;
    /* 1 while the pending frame's head is still arriving (HTTP/1.1: its start
     * line and fields), set by codecs that have one: a listener's header
     * timeout applies then, its body timeout otherwise (listener.h). */
    int in_header;
    /* Bytes a decode asks the transport to write now, ahead of anything
     * encoded after it (reply_len 0: none): an HTTP/1.1 server's "100
     * Continue" to a request that waits for it before sending its body.
     * The transport writes them and sets reply_len back to 0. */
    const char *reply;
    size_t reply_len;
    /* private */
    int error;   /* sticky */
    size_t scan; /* bytes of the pending frame already examined */
};

/* Looks for one frame at the start of data[0..len). Returns CT_CODEC_FRAME
 * and fills *frame, CT_CODEC_NEED_MORE (call again with the same bytes and
 * more after them), or a negative error: CT_EFRAMETOOLARGE, CT_EMALFORMED. */
int ct_codec_decode(ct_codec_t *codec, const uint8_t *data, size_t len, ct_frame_t *frame);

/* Frames len bytes of payload into out, which has room for len +
 * codec->overhead bytes; *written gets the frame's size. Returns 0,
 * CT_CODEC_LAST (framed, and the connection's last message: the protocol
 * says the sender closes after it, as an HTTP server after answering
 * "Connection: close"; a stream shuts its sending side down once it is
 * out), CT_EFRAMETOOLARGE or CT_EINVAL (a payload the format cannot carry). */
int ct_codec_encode(ct_codec_t *codec, const uint8_t *payload, size_t len, uint8_t *out,
                    size_t *written);

/* The sticky error, or 0. */
int ct_codec_error(const ct_codec_t *codec);

/* Forgets the state of a stream (for a new connection). */
void ct_codec_reset(ct_codec_t *codec);

#ifdef __cplusplus
}
#endif
#endif
