# Cross build for 64-bit big-endian IBM Z Linux (gcc-s390x-linux-gnu), run under qemu-s390x
# (qemu-user): the portable level's check that nothing assumes 64 bits or little-endian.
#   cmake -S . -B build-s390x -DCMAKE_TOOLCHAIN_FILE=cmake/s390x-linux-gnu.cmake
#   cmake --build build-s390x -j && ctest --test-dir build-s390x
set(FS_CROSS_TRIPLE s390x-linux-gnu)
set(FS_CROSS_PROCESSOR s390x)
set(FS_CROSS_QEMU qemu-s390x)
include(${CMAKE_CURRENT_LIST_DIR}/linux-cross.cmake)
