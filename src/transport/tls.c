/* TLS with OpenSSL: the contexts users make (tls.h), and the per-connection
 * session a stream drives through memory BIOs (tls_session.h).
 *
 * OpenSSL keeps its errors in a queue per thread, and SSL_get_error() must
 * find it empty of older errors (another library on the thread may have
 * left some): every failure here clears it before returning, and the queue
 * is made empty before each batch of records is read or written, by a look
 * first (ERR_clear_error() alone cost 37 instructions per request at
 * 50 x 64). */
#include "tls_session.h"
#include "../core/grow.h"
#include "ctower/error.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum { LANDING_BYTES = 16 << 10 }; /* one whole TLS record per read */

/* ---- contexts -------------------------------------------------------- */

static SSL_CTX *new_context(int is_server) {
    SSL_CTX *ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (ctx) SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    return ctx;
}

int ct_tls_server_context(SSL_CTX **out, const char *cert_file, const char *key_file) {
    SSL_CTX *ctx;
    if (!out || !cert_file || !key_file) return CT_EINVAL;
    if (!(ctx = new_context(1))) return UV_ENOMEM;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return CT_ETLS;
    }
    *out = ctx;
    return 0;
}

int ct_tls_client_context(SSL_CTX **out, const char *ca_file) {
    SSL_CTX *ctx;
    int ok;
    if (!out) return CT_EINVAL;
    if (!(ctx = new_context(0))) return UV_ENOMEM;
    ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                 : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return CT_ETLS;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return 0;
}

void ct_tls_context_free(SSL_CTX *ctx) {
    SSL_CTX_free(ctx);
}

/* ALPN's wire form: length bytes, each followed by as many. */
static int alpn_list_ok(const unsigned char *p, size_t len) {
    size_t at = 0;
    if (len == 0 || len > 65535) return 0;
    while (at < len) {
        if (p[at] > len - at - 1) return 0;
        at += 1u + p[at];
    }
    return 1;
}

/* A server's choice: its first protocol the client offers, or none (the
 * handshake goes on without ALPN). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *offered, unsigned offered_len, void *arg) {
    const char *ours = arg;
    unsigned char *chosen = NULL;
    (void)ssl;
    if (SSL_select_next_proto(&chosen, outlen, (const unsigned char *)ours, (unsigned)strlen(ours),
                              offered, offered_len) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

int ct_tls_context_alpn(SSL_CTX *ctx, int server, const char *protocols) {
    size_t len = protocols ? strlen(protocols) : 0;
    if (!ctx || !alpn_list_ok((const unsigned char *)protocols, len)) return CT_EINVAL;
    if (server) {
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, (void *)protocols);
        return 0;
    }
    return SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)protocols, (unsigned)len) == 0
               ? 0
               : UV_ENOMEM;
}

const char *ct_tls_session_protocol(const ct_tls_session_t *s, size_t *len) {
    const unsigned char *p = NULL;
    unsigned n = 0;
    *len = 0;
    if (!s->secure) return NULL;
    SSL_get0_alpn_selected(s->ssl, &p, &n);
    if (!p || n == 0) return NULL;
    *len = n;
    return (const char *)p;
}

static int is_ip(const char *name) {
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* A certificate for name, signed by its own key; valid from a minute ago
 * (clocks differ) for a day. */
static X509 *self_signed_cert(EVP_PKEY *key, const char *name) {
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *san;
    char alt[300];
    if (!x) return NULL;
    snprintf(alt, sizeof alt, "%s:%s", is_ip(name) ? "IP" : "DNS", name);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, alt);
    if (!san || X509_add_ext(x, san, -1) != 1 || X509_sign(x, key, EVP_sha256()) <= 0) {
        X509_EXTENSION_free(san);
        X509_free(x);
        return NULL;
    }
    X509_EXTENSION_free(san);
    return x;
}

static SSL_CTX *trusting(X509 *cert) {
    SSL_CTX *ctx = new_context(0);
    if (!ctx) return NULL;
    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), cert) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

int ct_tls_self_signed(SSL_CTX **server, SSL_CTX **client, const char *name) {
    EVP_PKEY *key;
    X509 *cert = NULL;
    SSL_CTX *s = NULL, *c = NULL;
    int r = CT_ETLS;
    if (!server || !name || strlen(name) > 255) return CT_EINVAL;
    if (!(key = EVP_EC_gen("P-256"))) goto done;
    if (!(cert = self_signed_cert(key, name))) goto done;
    if (!(s = new_context(1)) || SSL_CTX_use_certificate(s, cert) != 1 ||
        SSL_CTX_use_PrivateKey(s, key) != 1)
        goto done;
    if (client && !(c = trusting(cert))) goto done;
    *server = s;
    if (client) *client = c;
    s = c = NULL;
    r = 0;
done:
    SSL_CTX_free(s);
    SSL_CTX_free(c);
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return r;
}

/* ---- the BIO between OpenSSL and the stream --------------------------- */

/* OpenSSL reads the ciphertext where the socket's read put it and writes
 * its records straight into the session's output buffer: no memory BIO,
 * whose copies in and out, and whose zeroing of each region it grows into,
 * cost more than the rest of the stream together (callgrind: 280
 * instructions per request of memset alone at 50 x 64). */

static int bio_read(BIO *b, char *out, int len) {
    ct_tls_session_t *t = BIO_get_data(b);
    size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
    BIO_clear_retry_flags(b);
    if (n == 0) {
        BIO_set_retry_read(b); /* more will come */
        return -1;
    }
    memcpy(out, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static int bio_write(BIO *b, const char *in, int len) {
    ct_tls_session_t *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (ct_grow(&t->out, &t->out_cap, t->out_len + (size_t)len) != 0) return -1;
    memcpy(t->out + t->out_len, in, (size_t)len);
    t->out_len += (size_t)len;
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    ct_tls_session_t *t = BIO_get_data(b);
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t ? (long)t->in_len : 0;
    case BIO_CTRL_WPENDING:
        return t ? (long)t->out_len : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

/* The method table is made once per process and never changes, as
 * OpenSSL's own are. */
static BIO_METHOD *stream_bio_method;
static uv_once_t stream_bio_once = UV_ONCE_INIT;

static void make_stream_bio_method(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ctower stream");
    if (m && BIO_meth_set_read(m, bio_read) == 1 && BIO_meth_set_write(m, bio_write) == 1 &&
        BIO_meth_set_ctrl(m, bio_ctrl) == 1 && BIO_meth_set_create(m, bio_create) == 1)
        stream_bio_method = m;
    else
        BIO_meth_free(m);
}

/* ---- sessions -------------------------------------------------------- */

/* The name the client checks: an IP address against the certificate's IP
 * entries, a DNS name against its names (and sent as SNI, which may not
 * carry an address). */
static int set_peer_name(SSL *ssl, const char *name) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1) return 0;
    if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1) return CT_ETLS;
    return 0;
}

int ct_tls_session_new(ct_tls_session_t **out, const ct_tls_config_t *cfg, int is_server,
                       const char *peer_name) {
    ct_tls_session_t *t;
    if (!cfg || !cfg->ctx) return CT_EINVAL;
    uv_once(&stream_bio_once, make_stream_bio_method);
    if (!stream_bio_method) return UV_ENOMEM;
    if (!(t = calloc(1, sizeof *t))) return UV_ENOMEM;
    t->is_server = is_server;
    t->ssl = SSL_new(cfg->ctx);
    t->bio = BIO_new(stream_bio_method);
    if (!t->ssl || !t->bio) {
        BIO_free(t->bio);
        t->bio = NULL;
        ct_tls_session_free(t);
        return UV_ENOMEM;
    }
    BIO_set_data(t->bio, t);
    SSL_set_bio(t->ssl, t->bio, t->bio); /* one reference, now the SSL's */
    if (is_server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (peer_name && peer_name[0] && set_peer_name(t->ssl, peer_name) != 0) {
            ct_tls_session_free(t);
            ERR_clear_error();
            return CT_ETLS;
        }
    }
    *out = t;
    return 0;
}

void ct_tls_session_free(ct_tls_session_t *t) {
    if (!t) return;
    SSL_free(t->ssl);
    free(t->kept);
    free(t->landing);
    free(t->out);
    free(t->sending);
    free(t);
}

uint8_t *ct_tls_session_landing(ct_tls_session_t *t, size_t *len) {
    if (!t->landing) t->landing = malloc(LANDING_BYTES);
    *len = t->landing ? LANDING_BYTES : 0;
    return t->landing;
}

/* Before a batch of OpenSSL calls whose failures SSL_get_error() explains. */
static void clear_errors(void) {
    if (ERR_peek_error() != 0) ERR_clear_error();
}

int ct_tls_session_lend(ct_tls_session_t *t, const uint8_t *cipher, size_t n) {
    size_t at;
    clear_errors();
    if (t->in_len == 0) { /* the usual case: read from where it is */
        t->in = cipher;
        t->in_len = n;
        return 0;
    }
    /* bytes kept from before come first (they are in kept, compacted) */
    at = (size_t)(t->in - t->kept);
    if (ct_grow(&t->kept, &t->kept_cap, at + t->in_len + n) != 0) return UV_ENOMEM;
    memcpy(t->kept + at + t->in_len, cipher, n);
    t->in = t->kept + at;
    t->in_len += n;
    return 0;
}

int ct_tls_session_keep(ct_tls_session_t *t) {
    int lent = !t->kept || t->in < t->kept || t->in >= t->kept + t->kept_cap;
    if (t->in_len == 0) return 0;
    if (lent && ct_grow(&t->kept, &t->kept_cap, t->in_len) != 0) {
        t->in_len = 0;
        return UV_ENOMEM;
    }
    memmove(t->kept, t->in, t->in_len); /* from the caller's buffer, or to the front */
    t->in = t->kept;
    return 0;
}

/* Why the handshake failed: the peer's certificate, or anything else. */
static int handshake_error(const ct_tls_session_t *t) {
    ERR_clear_error();
    return SSL_get_verify_result(t->ssl) != X509_V_OK ? CT_ETLSVERIFY : CT_ETLS;
}

int ct_tls_session_handshake(ct_tls_session_t *t) {
    int r, e;
    if (t->secure) return 1;
    ERR_clear_error();
    r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->secure = 1;
        return 1;
    }
    e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    return handshake_error(t);
}

ssize_t ct_tls_session_read(ct_tls_session_t *t, uint8_t *out, size_t cap) {
    size_t n = 0;
    int e;
    if (SSL_read_ex(t->ssl, out, cap, &n) == 1) return (ssize_t)n;
    e = SSL_get_error(t->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    ERR_clear_error();
    return e == SSL_ERROR_ZERO_RETURN ? UV_EOF : CT_ETLS;
}

int ct_tls_session_has_input(const ct_tls_session_t *t) {
    return SSL_pending(t->ssl) > 0 || t->in_len > 0;
}

int ct_tls_session_write(ct_tls_session_t *t, const uint8_t *plain, size_t n) {
    size_t done = 0;
    if (n == 0) return 0;
    clear_errors();
    /* Without SSL_MODE_ENABLE_PARTIAL_WRITE, success means all n bytes; the
     * output buffer grows, so there is no waiting for room. */
    if (SSL_write_ex(t->ssl, plain, n, &done) == 1) return 0;
    ERR_clear_error();
    return CT_ETLS;
}

void ct_tls_session_close_notify(ct_tls_session_t *t) {
    if (t->notified || !t->secure) return;
    t->notified = 1;
    ERR_clear_error();
    SSL_shutdown(t->ssl); /* 0: ours is made; the peer's is not awaited */
    ERR_clear_error();
}

size_t ct_tls_session_pending(const ct_tls_session_t *t) {
    return t->out_len;
}

size_t ct_tls_session_take(ct_tls_session_t *t) {
    uint8_t *buf = t->sending;
    size_t cap = t->sending_cap, len = t->out_len;
    t->sending = t->out;
    t->sending_cap = t->out_cap;
    t->out = buf;
    t->out_cap = cap;
    t->out_len = 0;
    return len;
}
