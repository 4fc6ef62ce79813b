# The common part of the Linux cross toolchain files (aarch64-linux-gnu.cmake, ...): each
# sets FS_CROSS_TRIPLE (the GNU triple: compiler prefix and /usr/<triple> root),
# FS_CROSS_PROCESSOR and FS_CROSS_QEMU (qemu-user's binary), then includes this file.
# ctest runs every test through that emulator with the target's libraries.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${FS_CROSS_PROCESSOR})
set(CMAKE_C_COMPILER ${FS_CROSS_TRIPLE}-gcc)
# libraries and headers (libm, libgomp) from the target's root only, never the host's
set(CMAKE_FIND_ROOT_PATH /usr/${FS_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR ${FS_CROSS_QEMU};-L;/usr/${FS_CROSS_TRIPLE})
