#include "testutil.h"

Test(error, own_codes_have_names_and_messages) {
    cr_assert_str_eq(ct_err_name(CT_ESENDBROKEN), "CT_ESENDBROKEN");
    cr_assert_str_eq(ct_err_name(CT_ERECVBROKEN), "CT_ERECVBROKEN");
    cr_assert_str_eq(ct_err_name(CT_ECLOSED), "CT_ECLOSED");
    cr_assert_str_eq(ct_err_name(CT_EDESYNC), "CT_EDESYNC");
    cr_assert_str_eq(ct_err_name(CT_EOVERLOADED), "CT_EOVERLOADED");
    cr_assert_str_eq(ct_strerror(CT_ESENDBROKEN), "transport broken on send");
    cr_assert_str_eq(ct_strerror(CT_ERECVBROKEN), "transport broken on receive");
    cr_assert_str_eq(ct_strerror(CT_ECLOSED), "client closed");
}

Test(error, libuv_codes_pass_through) {
    cr_assert_eq(CT_ECANCELED, UV_ECANCELED);
    cr_assert_eq(CT_ETIMEDOUT, UV_ETIMEDOUT);
    cr_assert_str_eq(ct_err_name(UV_ECONNRESET), "UV_ECONNRESET");
    cr_assert_str_eq(ct_err_name(UV_EOF), "UV_EOF");
    cr_assert_str_eq(ct_err_name(-29999), "CT_EUNKNOWN");
    cr_assert_str_eq(ct_strerror(UV_ECONNRESET), uv_strerror(UV_ECONNRESET));
    cr_assert_str_eq(ct_err_name(CT_ECANCELED), "CT_ECANCELED");
    cr_assert_str_eq(ct_err_name(CT_ETIMEDOUT), "CT_ETIMEDOUT");
    cr_assert_str_eq(ct_err_name(CT_ECANCELED), "CT_ECANCELED");
}

/* ctower's range must not collide with any code libuv defines. */
Test(error, ranges_do_not_collide_with_libuv) {
#define CHECK_UV(name, msg) cr_assert(UV_##name > -30000 && UV_##name > CT_SERVICE_ERROR_BASE);
    UV_ERRNO_MAP(CHECK_UV)
#undef CHECK_UV
    cr_assert(!ct_err_is_service(CT_EDESYNC));
    cr_assert(!ct_err_is_service(UV_EOF));
}

Test(error, service_codes_round_trip) {
    cr_assert(ct_err_is_service(CT_SERVICE_ERROR(0)));
    cr_assert(ct_err_is_service(CT_SERVICE_ERROR(42)));
    cr_assert_eq(ct_err_service_code(CT_SERVICE_ERROR(42)), 42);
    cr_assert_eq(ct_err_service_code(CT_SERVICE_ERROR(CT_SERVICE_ERROR_MAX)), CT_SERVICE_ERROR_MAX);
    cr_assert_eq(ct_err_service_code(CT_EDESYNC), -1);
    cr_assert_str_eq(ct_err_name(CT_SERVICE_ERROR(7)), "CT_SERVICE_ERROR");
    cr_assert_str_eq(ct_strerror(CT_SERVICE_ERROR(7)), "service-specific error");
}

Test(version, the_library_reports_the_version_of_its_headers) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", CT_VERSION_MAJOR, CT_VERSION_MINOR, CT_VERSION_PATCH);
    cr_assert_str_eq(ct_version_string(), want);
    cr_assert_eq(ct_version(), (unsigned)CT_VERSION_HEX);
    cr_assert_eq(ct_version() >> 16, (unsigned)CT_VERSION_MAJOR);
}
