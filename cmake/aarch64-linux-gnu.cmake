# aarch64-linux-gnu.cmake: cross-build for Debian arm64 with gcc-aarch64-linux-gnu and the
# multiarch arm64 dev packages (libfoo-dev:arm64); tests run under qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# pkg-config must see only the arm64 .pc files, never the build machine's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Libraries and headers come from the multiarch paths, programs from the build machine.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# No "-L /usr/aarch64-linux-gnu": with it qemu looks every absolute path up in that prefix first,
# and "/" exists there, so opening "/" as a root fd gives the cross tree, where proc/self/stat is
# missing (unit.fileio failed so). The arm64 loader and libc come from libc6:arm64 (a dependency
# of the :arm64 dev packages) at the real multiarch paths, where the binaries' PT_INTERP points,
# so no prefix is needed and every path means what it means natively.
if(NOT EXISTS /lib/ld-linux-aarch64.so.1)
  message(FATAL_ERROR "no arm64 loader at /lib/ld-linux-aarch64.so.1: install libc6:arm64 "
                      "(scripts/test-arm64 installs it with the :arm64 dev packages)")
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
