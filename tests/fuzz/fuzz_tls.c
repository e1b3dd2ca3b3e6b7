/* libFuzzer target for the TLS session glue a stream drives
 * (src/transport/tls_session.h): a client and a server session exchange
 * ciphertext through two in-memory wires, cut into chunks of the script's
 * sizes, lent from buffers that are overwritten and freed once the session
 * has kept what it did not read (as the loop's read buffer is reused), with
 * reads into buffers of the script's sizes and readers that stop with input
 * waiting. Checked: each side receives exactly the bytes the other wrote,
 * in order; a byte flipped on a wire ends that side with CT_ETLS (never a
 * crash, never wrong plaintext); nothing leaks.
 *
 * Script: each byte is an operation (its low 3 bits) and its argument (the
 * rest, scaled); plaintext bytes come from a counter, so any corruption of
 * the data shows. */
#include "../../src/transport/tls_session.h"
#include "ctower/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static struct ssl_ctx_st *server_ctx, *client_ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (ct_tls_self_signed(&server_ctx, &client_ctx, "127.0.0.1") != 0) abort();
    return 0;
}

typedef struct side {
    ct_tls_session_t *t;
    uint8_t *wire; /* ciphertext on its way to this side */
    size_t wire_len, wire_cap;
    uint32_t next_out; /* the next plaintext byte this side writes (a counter) */
    uint32_t next_in;  /* the next one it expects from the other side */
    size_t unsent;     /* plaintext written before the handshake was done */
    int failed;        /* a TLS error ended it (after a flipped byte) */
} side_t;

static side_t client, server;
static int corrupted; /* a byte was flipped on a wire */

static uint8_t out_byte(uint32_t i) {
    return (uint8_t)(i * 2654435761u >> 24);
}

/* Moves the ciphertext side from made to the other side's wire. */
static void carry(side_t *from, side_t *to) {
    size_t n = ct_tls_session_take(from->t);
    if (n == 0) return;
    if (to->wire_len + n > to->wire_cap) {
        to->wire_cap = (to->wire_len + n) * 2;
        if (!(to->wire = realloc(to->wire, to->wire_cap))) abort();
    }
    memcpy(to->wire + to->wire_len, from->t->sending, n);
    to->wire_len += n;
}

static void write_plain(side_t *s, size_t n) {
    uint8_t buf[512];
    size_t i;
    if (s->failed) return;
    if (!s->t->secure) { /* as the stream does: held until the handshake is done */
        s->unsent += n;
        return;
    }
    n += s->unsent;
    s->unsent = 0;
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        for (i = 0; i < k; i++)
            buf[i] = out_byte(s->next_out++);
        if (ct_tls_session_write(s->t, buf, k) != 0) abort(); /* a healthy side never fails */
        n -= k;
    }
}

/* A TLS error: only after a flipped byte (on this side's wire, or on the
 * other's, whose alert this side then reads). */
static void fail(side_t *s) {
    if (!corrupted) abort();
    s->failed = 1;
}

/* Handshake, then reads into buffers of cap bytes while reading. */
static void pump(side_t *s, int reading, size_t cap) {
    uint8_t buf[256];
    int r;
    if (s->failed) return;
    if (!s->t->secure) {
        if ((r = ct_tls_session_handshake(s->t)) < 0) {
            fail(s);
            return;
        }
        if (r == 1) write_plain(s, 0); /* what waited for it */
    }
    while (reading && s->t->secure) {
        ssize_t n = ct_tls_session_read(s->t, buf, cap);
        ssize_t i;
        if (n == 0) break;
        if (n < 0) {
            if (n != UV_EOF)
                fail(s);
            else if (!corrupted)
                abort(); /* no one sent a closing message */
            return;
        }
        for (i = 0; i < n; i++)
            if (buf[i] != out_byte(s->next_in++)) abort(); /* wrong plaintext */
    }
}

/* Lends the first chunk bytes of s's wire, from a buffer that is then
 * scribbled over and freed, as the loop's read buffer is reused. */
static void deliver(side_t *s, size_t chunk, int reading, size_t cap) {
    uint8_t *lent;
    if (s->failed) return;
    if (chunk > s->wire_len) chunk = s->wire_len;
    lent = malloc(chunk ? chunk : 1);
    if (chunk) {
        memcpy(lent, s->wire, chunk);
        memmove(s->wire, s->wire + chunk, s->wire_len - chunk);
        s->wire_len -= chunk;
    }
    if (ct_tls_session_lend(s->t, lent, chunk) != 0) abort();
    pump(s, reading, cap);
    if (ct_tls_session_keep(s->t) != 0) abort();
    memset(lent, 0xA5, chunk);
    free(lent);
}

static void flip(side_t *s, unsigned at) {
    if (s->wire_len == 0) return;
    s->wire[at % s->wire_len] ^= 0x40;
    corrupted = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t i;
    memset(&client, 0, sizeof client);
    memset(&server, 0, sizeof server);
    corrupted = 0;
    if (ct_tls_session_new(&client.t, &(ct_tls_config_t){client_ctx, NULL}, 0, "127.0.0.1") ||
        ct_tls_session_new(&server.t, &(ct_tls_config_t){server_ctx, NULL}, 1, NULL))
        abort();
    pump(&client, 0, 1); /* the client speaks first */
    carry(&client, &server);
    for (i = 0; i < size; i++) {
        unsigned op = data[i] & 7, arg = data[i] >> 3; /* 0..31 */
        side_t *s = (arg & 1) ? &server : &client, *peer = s == &client ? &server : &client;
        switch (op) {
        case 0:
            write_plain(s, (size_t)arg * 37);
            break;
        case 1:
            deliver(s, (size_t)arg * 23 + 1, 1, (size_t)(arg % 8) * 31 + 1);
            break;
        case 2:
            deliver(s, (size_t)arg * 200 + 1, 1, 256);
            break;
        case 3:
            deliver(s, (size_t)arg * 11, 0, 1);
            break; /* the reader has stopped */
        case 4:
            pump(s, 1, (size_t)arg * 8 + 1);
            break; /* it starts again */
        case 5:
            carry(peer, s);
            break;
        case 6:
            if (arg == 31) flip(s, i);
            break;
        default:
            carry(&client, &server), carry(&server, &client);
            break;
        }
        carry(&client, &server);
        carry(&server, &client);
    }
    /* Everything still on the wires arrives, in whole: both sides must then
     * have received everything the other wrote. */
    for (i = 0; i < 8; i++) {
        deliver(&server, server.wire_len, 1, 256);
        carry(&server, &client);
        deliver(&client, client.wire_len, 1, 256);
        carry(&client, &server);
    }
    if (!corrupted) {
        if (!client.t->secure || !server.t->secure) abort();
        if (server.next_in != client.next_out || client.next_in != server.next_out) abort();
    }
    ct_tls_session_free(client.t);
    ct_tls_session_free(server.t);
    free(client.wire);
    free(server.wire);
    return 0;
}
