/* One TLS connection's OpenSSL state, driven by a stream (stream.c) through
 * memory BIOs: the stream feeds the ciphertext it reads in, takes the
 * ciphertext to write out, and moves plaintext in and out of its own
 * buffers. No I/O happens here, so the stream keeps its batching: one write
 * per flush, whatever OpenSSL makes of it. Private to the library. */
#ifndef CTOWER_TLS_SESSION_H
#define CTOWER_TLS_SESSION_H

#include "ctower/tls.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ct_tls_session {
    struct ssl_st *ssl;
    struct bio_st *bio; /* OpenSSL's side of the stream: reads in, writes out */
    int is_server;
    int secure;   /* the handshake has succeeded */
    int notified; /* our closing message is made */
    /* ciphertext read: OpenSSL reads in[0..in_len) next; in points into the
     * caller's buffer (lent) or into kept */
    const uint8_t *in;
    size_t in_len;
    uint8_t *kept; /* what OpenSSL had not read when a lent buffer went */
    size_t kept_cap;
    uint8_t *landing;   /* where reads land when the loop's buffer is lent */
    int landing_shared; /* the loop's buffer is ours for this read */
    uint8_t *out;       /* ciphertext OpenSSL made, to write */
    size_t out_len, out_cap;
    uint8_t *sending; /* ciphertext being written (the other buffer) */
    size_t sending_cap;
    size_t sending_len; /* of it, what a uv_write is still writing */
} ct_tls_session_t;

/* A session for one side of a connection; peer_name (a client's) is checked
 * against the server's certificate and sent as SNI: a DNS name or an IP
 * address, or NULL for neither. Returns 0 and *out, CT_ETLS or UV_ENOMEM. */
int ct_tls_session_new(ct_tls_session_t **out, const ct_tls_config_t *cfg, int is_server,
                       const char *peer_name);
void ct_tls_session_free(ct_tls_session_t *t);

/* The session's own buffer for a read, made on first use: *len bytes, or
 * NULL without memory. */
uint8_t *ct_tls_session_landing(ct_tls_session_t *t, size_t *len);

/* Gives OpenSSL n bytes read from the socket to read from where they are,
 * until ct_tls_session_keep(). Returns 0 or UV_ENOMEM. */
int ct_tls_session_lend(ct_tls_session_t *t, const uint8_t *cipher, size_t n);

/* Copies what OpenSSL has not read of lent bytes into the session, before
 * the buffer that holds them goes. Returns 0 or UV_ENOMEM. */
int ct_tls_session_keep(ct_tls_session_t *t);

/* Advances the handshake: 1 once it has succeeded, 0 while it waits for the
 * peer, or CT_ETLSVERIFY / CT_ETLS. */
int ct_tls_session_handshake(ct_tls_session_t *t);

/* Decrypts into out: the number of bytes (> 0), 0 when nothing more can be
 * had until more ciphertext comes, UV_EOF at the peer's closing message, or
 * CT_ETLS. */
ssize_t ct_tls_session_read(ct_tls_session_t *t, uint8_t *out, size_t cap);

/* Non-zero if ciphertext or plaintext is buffered for reading. */
int ct_tls_session_has_input(const ct_tls_session_t *t);

/* Encrypts n bytes (all of them; the handshake must have succeeded).
 * Returns 0 or CT_ETLS. */
int ct_tls_session_write(ct_tls_session_t *t, const uint8_t *plain, size_t n);

/* Makes our closing message (once). */
void ct_tls_session_close_notify(ct_tls_session_t *t);

/* Ciphertext waiting to be written, in bytes. */
size_t ct_tls_session_pending(const ct_tls_session_t *t);

/* Swaps the ciphertext waiting into t->sending (the buffer written until
 * the next take) and returns its length. */
size_t ct_tls_session_take(ct_tls_session_t *t);

/* The protocol the handshake agreed on (ALPN), *len bytes, or NULL. */
const char *ct_tls_session_protocol(const ct_tls_session_t *s, size_t *len);

#endif
