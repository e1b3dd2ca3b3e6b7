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
# Its manual page, which renders without a warning and tells every command.
man1="$prefix/share/man/man1/ctower.1"
test -f "$man1"
manual=$(groff -man -Tascii -P-cbou -ww "$man1" 2>"$prefix/groff.err")
[ ! -s "$prefix/groff.err" ] || { cat "$prefix/groff.err" >&2; exit 1; }
for cmd in serve bench proxy call help; do
  grep -q "ctower $cmd" <<<"$manual" || { echo "install check: ctower(1) lacks $cmd" >&2; exit 1; }
done
# The tool comes with the library, and runs from where it was installed.
"$prefix/bin/ctower" bench --connections 2 --depth 2 --requests 200 --json | grep -q '"errors": 0,'

# pkg-config, against the static library so no rpath is needed.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -Wall -Wextra -Werror $(pkg-config --cflags ctower) \
   "$src_dir/examples/echo_channel.c" -o "$prefix/echo_pc" \
   "$libdir/libctower.a" $(pkg-config --libs libuv)
"$prefix/echo_pc" | grep -qx "Hello, ctower"

# pkg-config alone, against the shared library, on a machine without the
# OpenSSL and nghttp2 dev packages: only ctower.pc and libuv's are visible.
# The flags name the prefix plainly and none of those libraries.
only_pc="$prefix/only-pc"
mkdir -p "$only_pc"
cp "$libdir/pkgconfig/ctower.pc" "$(pkg-config --variable=pcfiledir libuv)/libuv.pc" "$only_pc/"
flags=$(PKG_CONFIG_LIBDIR="$only_pc" PKG_CONFIG_PATH= pkg-config --cflags --libs ctower)
case " $flags " in
*-lssl* | *-lcrypto* | *-lnghttp2* | *-lhttp_parser* | *..*)
  echo "install check: pkg-config --cflags --libs ctower gave: $flags" >&2
  exit 1
  ;;
esac
case " $flags " in *" -I$prefix/include "*) ;; *)
  echo "install check: the include path is not $prefix/include: $flags" >&2
  exit 1
  ;;
esac
# shellcheck disable=SC2086 # $flags is a list of flags
cc -Wall -Wextra -Werror "$src_dir/examples/echo_channel.c" -o "$prefix/echo_shared" $flags
LD_LIBRARY_PATH="$libdir" "$prefix/echo_shared" | grep -qx "Hello, ctower"
# the tutorial's step 3, as it says to build it
cc -Wall -Wextra -Werror "$src_dir/examples/kv.c" -o "$prefix/kv" $flags
LD_LIBRARY_PATH="$libdir" "$prefix/kv" | grep -q "GET: 10000 answered, 0 wrong, 0 failed"
LD_LIBRARY_PATH="$libdir" ldd "$prefix/echo_shared" | grep -q "$libdir/libctower.so" ||
  { echo "install check: echo_shared is not linked to the installed libctower.so" >&2; exit 1; }

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
echo "install check passed: pkg-config (static, and shared without the dev packages of OpenSSL and nghttp2) and find_package consumers built and ran"
