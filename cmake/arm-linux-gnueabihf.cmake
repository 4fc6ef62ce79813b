# Cross build for 32-bit ARM Linux, hard float (gcc-arm-linux-gnueabihf), run under qemu-arm
# (qemu-user): the portable level's check that nothing assumes 64 bits or little-endian.
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/arm-linux-gnueabihf.cmake
#   cmake --build build-arm -j && ctest --test-dir build-arm
set(FS_CROSS_TRIPLE arm-linux-gnueabihf)
set(FS_CROSS_PROCESSOR arm)
set(FS_CROSS_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross.cmake)
