# Finds the Debian-packaged dependency stack (see docs/building.md).
find_package(Threads REQUIRED)
find_package(Torch REQUIRED)                       # libtorch-dev -> target `torch`
find_package(CLI11 CONFIG REQUIRED)                # libcli11-dev (header-only)
find_package(nlohmann_json 3.11 CONFIG REQUIRED)   # nlohmann-json3-dev
find_package(fmt CONFIG REQUIRED)                  # libfmt-dev
find_package(spdlog CONFIG REQUIRED)               # libspdlog-dev (built against the external fmt)
find_package(CURL REQUIRED)                        # libcurl4-openssl-dev
find_package(PkgConfig REQUIRED)
pkg_check_modules(ONIG REQUIRED IMPORTED_TARGET oniguruma)        # libonig-dev: tokenizer regexes
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)  # libutf8proc-dev: NFC, lower-casing

# OpenCV: Debian ships OpenCVConfig.cmake only in the big libopencv-dev; with the three slim module
# packages (core, imgproc, imgcodecs) we build the imported target by hand.
find_package(OpenCV 4 QUIET COMPONENTS core imgproc imgcodecs)
add_library(dg_opencv INTERFACE)
if(OpenCV_FOUND)
  target_link_libraries(dg_opencv INTERFACE opencv_core opencv_imgproc opencv_imgcodecs)
else()
  find_path(OpenCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
  target_include_directories(dg_opencv SYSTEM INTERFACE ${OpenCV_INCLUDE_DIR})
  foreach(m core imgproc imgcodecs)
    find_library(OpenCV_${m}_LIB opencv_${m} REQUIRED)
    target_link_libraries(dg_opencv INTERFACE ${OpenCV_${m}_LIB})
  endforeach()
endif()
add_library(dg::opencv ALIAS dg_opencv)

if(DG_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
