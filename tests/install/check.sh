#!/usr/bin/env bash
# Installs the build tree into a temporary prefix and builds a program
# against it twice: through pkg-config and through CMake's find_package.
set -euo pipefail
build_dir=$1
src_dir=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
test -f "$prefix/include/ctower/ctower.h"
libdir=$(ls -d "$prefix"/lib* | head -n 1)
test -f "$libdir/libctower.a"
test -f "$libdir/pkgconfig/ctower.pc"
# The tool comes with the library, and runs from where it was installed.
"$prefix/bin/ctower" bench --connections 2 --depth 2 --requests 200 --json | grep -q '"errors": 0,'

# pkg-config, against the static library so no rpath is needed.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -Wall -Wextra -Werror $(pkg-config --cflags ctower) \
   "$src_dir/examples/echo_channel.c" -o "$prefix/echo_pc" \
   "$libdir/libctower.a" $(pkg-config --libs libuv)
"$prefix/echo_pc" | grep -qx "Hello, ctower"

# CMake package.
mkdir -p "$prefix/consumer"
cat > "$prefix/consumer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(ctower 0.1 REQUIRED)
add_executable(echo_cmake "$src_dir/examples/echo_channel.c")
target_link_libraries(echo_cmake PRIVATE ctower::ctower_static)
CMAKE
cmake -S "$prefix/consumer" -B "$prefix/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer/build" >/dev/null
"$prefix/consumer/build/echo_cmake" | grep -qx "Hello, ctower"
echo "install check passed: pkg-config and find_package consumers built and ran"
