/* TLS for stream transports, with OpenSSL.
 *
 * A stream whose configuration names a ct_tls_config_t encrypts what it
 * sends and decrypts what it receives; framing, batching and back-pressure
 * stay as for a plain stream (stream.h), over the decrypted bytes. A
 * connector reports a TLS stream connected only once its handshake has
 * succeeded, so a peer whose certificate is refused is a failed connect
 * (CT_ETLSVERIFY), as a refused connection is. A listener's streams do their
 * handshake as the server reads; one that fails ends that connection alone.
 *
 * Errors: CT_ETLSVERIFY (the peer's certificate was not accepted: untrusted,
 * expired, or not for the name asked for) and CT_ETLS (any other failure of
 * the handshake or of a record: a peer that does not speak TLS, a protocol
 * or cipher mismatch, a forged record). On a receive, a peer that ends the
 * connection without TLS's closing message is reported as a plain one that
 * closes (UV_EOF, or CT_ETRUNCATED in the middle of a frame): the framing,
 * not the closing message, tells a whole message from a cut one.
 *
 * The SSL_CTX is the user's: certificates, trust, versions and ciphers are
 * set on it with OpenSSL's own calls, or made by the helpers below. This
 * header does not include OpenSSL's.
 */
#ifndef CTOWER_TLS_H
#define CTOWER_TLS_H

#ifdef __cplusplus
extern "C" {
#endif

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

typedef struct ct_tls_config {
    /* Each stream takes a reference on it (SSL_new), so the context may be
     * freed while streams made with it are still open. It must outlive the
     * connectors and listeners whose configuration names it. */
    struct ssl_ctx_st *ctx;
    /* Client side: the name sent as SNI and checked against the server's
     * certificate. NULL: the connector's host, name or IP address (for
     * unix:// addresses, no name: then only the chain is checked). */
    const char *server_name;
} ct_tls_config_t;

/* A server context with the certificate chain and private key in PEM files.
 * Returns 0 and *ctx, or CT_ETLS (unreadable files, a key that does not
 * match the certificate) or UV_ENOMEM. */
int ct_tls_server_context(struct ssl_ctx_st **ctx, const char *cert_file, const char *key_file);

/* A client context that checks the server's certificate against the CA
 * certificates in ca_file (PEM), or against the system's trust store when
 * ca_file is NULL. TLS 1.2 and newer. Returns 0 and *ctx, or CT_ETLS or
 * UV_ENOMEM. */
int ct_tls_client_context(struct ssl_ctx_st **ctx, const char *ca_file);

/* For tests and benchmarks: a fresh P-256 key and a certificate for name
 * (a DNS name, or an IP address) that signs itself, valid for one day, as a
 * server context; and, if client is not NULL, a client context that trusts
 * exactly that certificate. Returns 0, CT_ETLS or UV_ENOMEM. */
int ct_tls_self_signed(struct ssl_ctx_st **server, struct ssl_ctx_st **client, const char *name);

/* Application protocols for the handshake (ALPN), as a string in ALPN's
 * wire form: each name after its length byte, such as CT_TLS_ALPN_H2. A
 * client offers them; a server takes the first of its own that the client
 * offers, and goes on without one if there is none (the protocol is then
 * the one the server speaks anyway). protocols must outlive ctx (a string
 * literal does). Returns 0, CT_EINVAL (an empty or malformed list) or
 * UV_ENOMEM. */
int ct_tls_context_alpn(struct ssl_ctx_st *ctx, int server, const char *protocols);

/* HTTP/2 over TLS (RFC 9113 3.2), for ct_tls_context_alpn(). */
#define CT_TLS_ALPN_H2 "\x02h2"

/* SSL_CTX_free(): gives back a reference taken by the functions above. */
void ct_tls_context_free(struct ssl_ctx_st *ctx);

#ifdef __cplusplus
}
#endif
#endif
