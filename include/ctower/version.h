/* The library's version: the macros tell the headers a program was built
 * with, the functions the library it runs with (a shared library may be
 * newer than the headers). CMakeLists.txt reads the project's version from
 * here, so this file is its one source. */
#ifndef CTOWER_VERSION_H
#define CTOWER_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

#define CT_VERSION_MAJOR 0 /* incompatible changes */
#define CT_VERSION_MINOR 1 /* additions */
#define CT_VERSION_PATCH 0 /* fixes */

/* (to spell the version) */
#define CT_VERSION_STRINGIFY_(x) #x
/* x's value as a string literal */
#define CT_VERSION_STRINGIFY(x) CT_VERSION_STRINGIFY_(x)
/* "0.1.0" */
#define CT_VERSION_STRING                                                                          \
    CT_VERSION_STRINGIFY(CT_VERSION_MAJOR)                                                         \
    "." CT_VERSION_STRINGIFY(CT_VERSION_MINOR) "." CT_VERSION_STRINGIFY(CT_VERSION_PATCH)
/* One number that orders versions: 0x000100 for 0.1.0. */
#define CT_VERSION_HEX ((CT_VERSION_MAJOR << 16) | (CT_VERSION_MINOR << 8) | CT_VERSION_PATCH)

/* The running library's CT_VERSION_HEX and CT_VERSION_STRING. */
unsigned ct_version(void);
const char *ct_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
