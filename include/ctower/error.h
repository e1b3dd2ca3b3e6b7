/* Error codes.
 *
 * Every ctower function that can fail returns a negative int. libuv's codes
 * (UV_ECONNRESET, UV_EOF, ...) pass through unchanged; ctower's own codes live
 * in [-30999, -30000] and codes a service defines for itself in
 * [CT_SERVICE_ERROR(0), CT_SERVICE_ERROR(CT_SERVICE_ERROR_MAX)], ranges that
 * cannot collide with libuv's (which stay above -4096).
 *
 * This header does not include <uv.h> so that codecs, which do no I/O, can
 * use it.
 */
#ifndef CTOWER_ERROR_H
#define CTOWER_ERROR_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one table of ctower's own codes: name, value, message. */
#define CT_ERRNO_MAP(XX)                                                                           \
    XX(ESENDBROKEN, -30001, "transport broken on send")                                            \
    XX(ERECVBROKEN, -30002, "transport broken on receive")                                         \
    XX(ECLOSED, -30003, "client closed")                                                           \
    XX(EDESYNC, -30004, "desynchronized: a response arrived with no request waiting for it")       \
    XX(EOVERLOADED, -30005, "service overloaded")                                                  \
    XX(ECLOSING, -30006, "handle is already closing")                                              \
    XX(ESHUTDOWN, -30007, "service is shutting down")                                              \
    XX(EBUSY, -30008, "operation is still in progress")                                            \
    XX(EINVAL, -30009, "invalid argument")                                                         \
    XX(ENOTSUP, -30010, "operation not supported by this service")                                 \
    XX(EFRAMETOOLARGE, -30011, "frame larger than the codec's maximum")                            \
    XX(EMALFORMED, -30012, "malformed frame")                                                      \
    XX(ETRUNCATED, -30013, "peer closed the connection in the middle of a frame")                  \
    XX(EBADADDR, -30014,                                                                           \
       "bad address (expected tcp://HOST:PORT, tcp://[V6]:PORT or unix:///PATH)")                  \
    XX(ECONNECT, -30015, "could not connect")                                                      \
    XX(ETLS, -30016, "TLS failed: handshake or record refused, or the peer does not speak TLS")    \
    XX(ETLSVERIFY, -30017,                                                                         \
       "TLS peer's certificate not accepted (untrusted, expired or wrong name)")                   \
    XX(ENOENDPOINT, -30018, "no endpoint to send the call to")                                     \
    XX(EOPEN, -30019, "circuit open: the service failed too often, calls fail fast for a while")   \
    XX(EFLOOD, -30020, "peer flooded the connection with frames that do no work")                  \
    XX(EREQTIMEOUT, -30021, "a request did not arrive in time (headers or body too slow)")         \
    XX(EHEADERTOOLARGE, -30022, "header block too large, or too many fields")                      \
    XX(EDEADLINE, -30023, "the caller's deadline passed (its context's, not a local timeout)")

/* ctower's own codes, from the table above. */
typedef enum {
#define CT__ERR_ENUM(name, value, msg) CT_##name = (value),
    CT_ERRNO_MAP(CT__ERR_ENUM)
#undef CT__ERR_ENUM
} ct_errno_t;

/* Canceled and timed out are libuv's codes (static-asserted equal in error.c);
 * they are spelled here through errno so that this header stays uv-free. */
#define CT_ECANCELED (-ECANCELED) /* an op canceled, or a drain cut short by a close */
#define CT_ETIMEDOUT (-ETIMEDOUT) /* too late: a timeout layer's, or the call's deadline */

/* A service's own error code n (0 <= n <= CT_SERVICE_ERROR_MAX), as an op
 * status. ct_err_service_code() recovers n. */
#define CT_SERVICE_ERROR_BASE (-100000)                          /* CT_SERVICE_ERROR(0) */
#define CT_SERVICE_ERROR_MAX  999999                             /* the largest n */
#define CT_SERVICE_ERROR(n)   (CT_SERVICE_ERROR_BASE - (int)(n)) /* n's op status */

/* Non-zero if err was made by CT_SERVICE_ERROR(). */
int ct_err_is_service(int err);

/* The n of CT_SERVICE_ERROR(n), or -1 if err is not a service error. */
int ct_err_service_code(int err);

/* A human-readable message for any code: ctower's, libuv's or a service's.
 * Never NULL; an unknown code gives "unknown error". */
const char *ct_strerror(int err);

/* The code's symbolic name, as a program spells it: "CT_EDESYNC",
 * "CT_ETIMEDOUT", "UV_ECONNRESET", "CT_SERVICE_ERROR" for a service's own
 * code, "CT_EUNKNOWN" for a code that is none of these. Never NULL. */
const char *ct_err_name(int err);

/* The kinds errors are counted by (stats.h: a "kind" label), from a
 * status; a layer or server that counts errors counts them by these. */
typedef enum ct_error_kind {
    CT_KIND_TIMEOUT,     /* CT_ETIMEDOUT (a layer's timeout or the caller's deadline) */
    CT_KIND_OVERLOADED,  /* CT_EOVERLOADED */
    CT_KIND_CANCELED,    /* CT_ECANCELED */
    CT_KIND_BROKEN,      /* the connection broke: CT_ESENDBROKEN, CT_ERECVBROKEN, CT_EDESYNC */
    CT_KIND_CONNECT,     /* could not connect: CT_ECONNECT, CT_ETLS, CT_ETLSVERIFY */
    CT_KIND_OPEN,        /* a breaker open: CT_EOPEN */
    CT_KIND_UNAVAILABLE, /* no way to the service: CT_ENOENDPOINT, CT_ECLOSED, CT_ESHUTDOWN */
    CT_KIND_REFUSED,     /* a request refused as bad or slow: CT_EMALFORMED, CT_EFRAMETOOLARGE,
                          * CT_EHEADERTOOLARGE, CT_EREQTIMEOUT */
    CT_KIND_OTHER,       /* anything else (a service's own errors) */
    CT_KIND_COUNT
} ct_error_kind_t;

/* The kind error code status is counted as (CT_KIND_OTHER when it is of
 * no other kind). */
ct_error_kind_t ct_error_kind(int status);

/* "timeout", "overloaded", ...: the label value of a kind. */
const char *ct_error_kind_name(ct_error_kind_t kind);

#ifdef __cplusplus
}
#endif
#endif
