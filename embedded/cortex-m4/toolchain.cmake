# CMake toolchain for an Arm Cortex-M4F with hardware single-precision floats
# (arm-none-eabi-gcc, newlib). Used by this folder's CMakeLists.txt; usable alone:
#   cmake -S . -B build-m4 -DCMAKE_TOOLCHAIN_FILE=embedded/cortex-m4/toolchain.cmake -DFASTSEQ_BARE_METAL=ON
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
set(CMAKE_C_FLAGS_INIT "-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -ffunction-sections -fdata-sections")
# no operating system to link a test program for: check the compiler with a library
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
