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
    if (ct_err_is_service(err)) return "CT_SERVICE_ERROR";
    return uv_err_name(err);
}
