/* Error messages and names, generated from the one table in error.h. */
#include "ctower/error.h"

#include <uv.h>

_Static_assert(CT_ECANCELED == UV_ECANCELED, "CT_ECANCELED must be libuv's code");
_Static_assert(CT_ETIMEDOUT == UV_ETIMEDOUT, "CT_ETIMEDOUT must be libuv's code");

int ct_err_is_service(int err) {
    return err <= CT_SERVICE_ERROR_BASE && err >= CT_SERVICE_ERROR(CT_SERVICE_ERROR_MAX);
}

int ct_err_service_code(int err) {
    return ct_err_is_service(err) ? CT_SERVICE_ERROR_BASE - err : -1;
}

const char *ct_strerror(int err) {
    switch (err) {
#define CT__ERR_MSG(name, value, msg)                                                              \
    case CT_##name:                                                                                \
        return msg;
        CT_ERRNO_MAP(CT__ERR_MSG)
#undef CT__ERR_MSG
    default:
        break;
    }
    if (ct_err_is_service(err)) return "service-specific error";
    return uv_strerror(err);
}

const char *ct_err_name(int err) {
    switch (err) {
#define CT__ERR_NAME(name, value, msg)                                                             \
    case CT_##name:                                                                                \
        return "CT_" #name;
        CT_ERRNO_MAP(CT__ERR_NAME)
#undef CT__ERR_NAME
    default:
        break;
    }
    /* libuv's codes by the names a program writes: CT_ for the two that
     * ctower spells itself, UV_ for the rest */
    if (err == CT_ECANCELED) return "CT_ECANCELED";
    if (err == CT_ETIMEDOUT) return "CT_ETIMEDOUT";
    switch (err) {
#define CT__UV_NAME(name, msg)                                                                     \
    case UV_##name:                                                                                \
        return "UV_" #name;
        UV_ERRNO_MAP(CT__UV_NAME)
#undef CT__UV_NAME
    default:
        break;
    }
    if (ct_err_is_service(err)) return "CT_SERVICE_ERROR";
    return "CT_EUNKNOWN";
}

/* ---- kinds, for counting ------------------------------------------------- */

ct_error_kind_t ct_error_kind(int status) {
    switch (status) {
    case CT_ETIMEDOUT:
        return CT_KIND_TIMEOUT;
    case CT_EOVERLOADED:
        return CT_KIND_OVERLOADED;
    case CT_ECANCELED:
        return CT_KIND_CANCELED;
    case CT_ESENDBROKEN:
    case CT_ERECVBROKEN:
    case CT_EDESYNC:
        return CT_KIND_BROKEN;
    case CT_ECONNECT:
    case CT_ETLS:
    case CT_ETLSVERIFY:
        return CT_KIND_CONNECT;
    case CT_EOPEN:
        return CT_KIND_OPEN;
    case CT_ENOENDPOINT:
    case CT_ECLOSED:
    case CT_ESHUTDOWN:
        return CT_KIND_UNAVAILABLE;
    default:
        return CT_KIND_OTHER;
    }
}

const char *ct_error_kind_name(ct_error_kind_t kind) {
    static const char *const names[CT_KIND_COUNT] = {"timeout",     "overloaded", "canceled",
                                                     "broken",      "connect",    "open",
                                                     "unavailable", "refused",    "other"};
    return (unsigned)kind < CT_KIND_COUNT ? names[kind] : "other";
}
