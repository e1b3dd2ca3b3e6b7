// Compiles every public header as C++ and uses a few declarations.
#include <ctower/ctower.h>

#include <cstdio>
#include <cstring>

int main() {
    const char *msg = ct_strerror(CT_EDESYNC);
    if (std::strcmp(ct_err_name(CT_EDESYNC), "CT_EDESYNC") != 0) return 1;
    std::printf("%s\n", msg);
    return 0;
}
