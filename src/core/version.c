#include "ctower/version.h"

unsigned ct_version(void) {
    return CT_VERSION_HEX;
}

const char *ct_version_string(void) {
    return CT_VERSION_STRING;
}
