/* ct_context_t: what a call carries besides its request: the time its
 * caller will wait, its place in a trace, and which attempt it is.
 *
 * The caller owns the context, as it owns the op, and keeps it unchanged
 * until the op completes; it reaches the service as op->ctx (NULL: a call
 * as before, no deadline, no trace). Layers that make calls of their own
 * (timeout, retry, hedge, balance, ...) hand the context on to them; retry
 * and hedge hand on copies whose attempt counts their attempts, and timeout
 * a copy whose deadline is the earlier of the caller's and its own.
 *
 * The deadline is absolute, in milliseconds on the loop's clock (uv_now()),
 * so one deadline serves every layer of a process without arithmetic: a
 * proxy that spent 3 ms has 3 ms less to give its backend without doing
 * anything. Every loop of a process reads the same monotonic clock, so a
 * deadline may cross to another loop (ct_share_t). On the wire it travels
 * as the time left (ct_context_format_timeout) and comes back absolute on
 * the receiver's clock: two hosts never compare their clocks.
 *
 * What honours it (DESIGN.md's service contract, docs/decisions.md):
 *  - ct_service_call() refuses a call whose deadline has passed with
 *    CT_ETIMEDOUT, nothing started: no layer, client or attempt starts late.
 *  - ct_timeout_t fires at the earlier of its own timeout and the deadline;
 *    an op that ends at the deadline has status CT_ETIMEDOUT and cause
 *    CT_EDEADLINE (a local timeout: cause 0).
 *  - ct_retry_t and ct_hedge_t never start an attempt or a backup after the
 *    deadline and never wait past it.
 *  - A server reads the incoming request's context (ct_server_config_t's
 *    read_context) and hands it to its service; an answer that comes after
 *    the deadline is replaced by the CT_ETIMEDOUT refusal of its protocol.
 *
 * Trace ids follow W3C Trace Context (traceparent): a 16-byte trace id, the
 * 8-byte id of the caller's span, and the flags (01: sampled). All-zero
 * trace ids mean "no trace".
 */
#ifndef CTOWER_CONTEXT_H
#define CTOWER_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a call carries besides its request: its deadline, its trace, its attempt. */
typedef struct ct_context {
    uint64_t deadline_ms; /* absolute, on uv_now()'s clock; 0: none */
    uint8_t trace_id[16]; /* all zero: no trace */
    uint8_t span_id[8];   /* the caller's span: the parent of the callee's */
    uint8_t trace_flags;  /* W3C trace flags (01: sampled) */
    uint8_t attempt;      /* 0: the first try; retry counts its further ones */
} ct_context_t;

/* The longest forms of the wire helpers below, with their NUL. */
#define CT_CONTEXT_TIMEOUT_MAX     10 /* 8 digits and a unit: "99999999m" */
#define CT_CONTEXT_TRACEPARENT_LEN 56 /* "00-" 32 "-" 16 "-" 2, NUL */

/* A context with nothing set: no deadline, no trace, first attempt. */
void ct_context_init(ct_context_t *ctx);

/* Brings the deadline to now + ms if that is earlier than the one set (a
 * callee never gets more time than its caller has). */
void ct_context_set_timeout(ct_context_t *ctx, uint64_t now, uint64_t ms);

/* Milliseconds left at now: 0 once the deadline has passed, UINT64_MAX
 * without one. */
uint64_t ct_context_remaining(const ct_context_t *ctx, uint64_t now);

/* Non-zero if ctx (may be NULL) has a deadline that has come at now. */
int ct_context_expired(const ct_context_t *ctx, uint64_t now);

/* Non-zero if ctx has a trace id. */
int ct_context_traced(const ct_context_t *ctx);

/* The time left, in the form of gRPC's grpc-timeout: at most 8 digits and a
 * unit. Exact in milliseconds ("250m") up to 27 hours; beyond, rounded up
 * to seconds, minutes or hours ("S", "M", "H"), so that it never tells less
 * than is left. Writes the NUL-terminated form to out (at least
 * CT_CONTEXT_TIMEOUT_MAX bytes) and returns its length. */
size_t ct_context_format_timeout(uint64_t ms, char *out);

/* Parses that form (also u and n, micro- and nanoseconds, rounded up to a
 * millisecond; no sign, no spaces). Returns 0 with *ms, or CT_EMALFORMED. */
int ct_context_parse_timeout(const char *s, size_t len, uint64_t *ms);

/* The traceparent value of ctx ("00-<trace id>-<span id>-<flags>", lower
 * case hex), NUL-terminated, into out (CT_CONTEXT_TRACEPARENT_LEN bytes).
 * Returns its length, 55. */
size_t ct_context_format_traceparent(const ct_context_t *ctx, char *out);

/* Parses a traceparent value into ctx's trace id, span id and flags (the
 * rest of ctx unchanged). A version other than 00 is read as 00 reads it
 * (its first four fields), as W3C asks. Returns 0, or CT_EMALFORMED (wrong
 * length or characters, an all-zero trace or span id, version ff); ctx is
 * unchanged then. */
int ct_context_parse_traceparent(ct_context_t *ctx, const char *s, size_t len);

/* ---- a binary block, for framings without fields -------------------------- *
 *
 * Where a protocol has no fields (the length-delimited framing of `ctower
 * serve`, `bench`, `call` and `proxy` with --context), a request's payload
 * starts with this block, CT_CONTEXT_BLOCK_SIZE bytes: a version (1), a
 * byte of which bit 0 says a deadline follows and bit 1 a trace, the trace
 * flags, the attempt, the time left in milliseconds (32 bits, big-endian,
 * at most ~49 days), the trace id and the span id. Both ends must be told
 * (configured, not negotiated): a peer that is not sees the block as part
 * of the payload. Its size is fixed so that a hop rewrites it in place. */
#define CT_CONTEXT_BLOCK_SIZE 32

/* Writes ctx's block as of now into out[0..CT_CONTEXT_BLOCK_SIZE). */
void ct_context_write_block(const ct_context_t *ctx, uint64_t now, uint8_t *out);

/* Reads the block at the start of data[0..len) into *ctx (a deadline of now +
 * the time left, the earlier if ctx had one; the trace). Returns 1 if it
 * carries a deadline or a trace, 0 if neither, CT_EMALFORMED if data is
 * shorter than a block or of another version (ctx unchanged). */
int ct_context_read_block(const uint8_t *data, size_t len, uint64_t now, ct_context_t *ctx);

/* A new span for a hop: ctx's span id becomes span (8 random bytes the
 * caller supplies, ct_loop_random()), the trace id stays; a context
 * without a trace id starts one from trace (16 bytes). */
void ct_context_new_span(ct_context_t *ctx, const uint8_t span[8], const uint8_t trace[16]);

#ifdef __cplusplus
}
#endif
#endif
