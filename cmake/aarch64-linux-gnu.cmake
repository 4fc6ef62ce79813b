# Cross build for 64-bit ARM Linux (Debian: apt-get install gcc-aarch64-linux-gnu qemu-user):
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64 -j && ctest --test-dir build-aarch64
# ctest runs every test through qemu-aarch64 (user mode) with the target's libraries.
set(FS_CROSS_TRIPLE aarch64-linux-gnu)
set(FS_CROSS_PROCESSOR aarch64)
set(FS_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross.cmake)
