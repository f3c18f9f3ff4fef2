# Finds the dependency stack (docs/development.md): libtorch from the pip torch that ./setup.sh installs, the
# rest from Debian's packages. With DG_ENGINE_ONLY only libtorch,
# nlohmann_json, fmt (header-only is enough), Oniguruma and utf8proc are needed, found by config files
# or, failing that, by plain header/library search (so they can be copied onto a machine by hand:
# set CMAKE_PREFIX_PATH to their folder).
find_package(Threads REQUIRED)
find_package(Torch REQUIRED)                       # the pip torch's libtorch -> target `torch`
# The pip wheel's libtorch.so exports pieces of a newer libstdc++ that it carries (std::filesystem among
# them; one of them calls through a null pointer here). The dynamic linker binds each symbol to the first
# library in DT_NEEDED order that defines it, so the system libstdc++ must come before libtorch: it is
# named first on the link line of everything that links torch.
set_property(TARGET torch APPEND PROPERTY INTERFACE_LINK_OPTIONS
             "LINKER:--push-state,--no-as-needed" "-lstdc++" "LINKER:--pop-state")

# nlohmann-json3-dev; -DDG_JSON_INCLUDE=<folder> uses a copy of the headers instead.
add_library(dg_json INTERFACE)
if(NOT DG_JSON_INCLUDE)
  find_package(nlohmann_json 3.11 CONFIG QUIET)
endif()
if(nlohmann_json_FOUND)
  target_link_libraries(dg_json INTERFACE nlohmann_json::nlohmann_json)
else()
  find_path(DG_JSON_INCLUDE nlohmann/json.hpp REQUIRED)
  target_include_directories(dg_json SYSTEM INTERFACE ${DG_JSON_INCLUDE})
endif()
add_library(dg::json ALIAS dg_json)

# libfmt-dev; -DDG_FMT_INCLUDE=<folder> uses a copy of fmt's headers, header-only.
add_library(dg_fmt INTERFACE)
if(NOT DG_FMT_INCLUDE)
  find_package(fmt CONFIG QUIET)
endif()
if(fmt_FOUND)
  target_link_libraries(dg_fmt INTERFACE fmt::fmt)
else()
  find_path(DG_FMT_INCLUDE fmt/format.h REQUIRED)
  # Header-only, so nothing links a compiled libfmt. A pip torch ships fmt headers of its own, and the
  # translation units that include torch see those (gcc drops -I/usr/include in favour of its system
  # position, after -isystem); the others see this copy. fmt's versioned inline namespaces (fmt::v9,
  # fmt::v12) keep the two apart in one binary.
  target_include_directories(dg_fmt BEFORE INTERFACE ${DG_FMT_INCLUDE})
  target_compile_definitions(dg_fmt INTERFACE FMT_HEADER_ONLY)
endif()
add_library(dg::fmt ALIAS dg_fmt)

# libonig-dev (tokenizer regexes), libutf8proc-dev (NFC, lower-casing).
foreach(pair "onig:oniguruma.h" "utf8proc:utf8proc.h")
  string(REPLACE ":" ";" pair "${pair}")
  list(GET pair 0 lib)
  list(GET pair 1 header)
  find_path(DG_${lib}_INCLUDE ${header} REQUIRED)
  find_library(DG_${lib}_LIB NAMES ${lib} REQUIRED)
  add_library(dg_${lib} INTERFACE)
  target_include_directories(dg_${lib} SYSTEM INTERFACE ${DG_${lib}_INCLUDE})
  target_link_libraries(dg_${lib} INTERFACE ${DG_${lib}_LIB})
  add_library(dg::${lib} ALIAS dg_${lib})
endforeach()

if(DG_ENGINE_ONLY)
  return()
endif()

find_package(CLI11 CONFIG REQUIRED)                # libcli11-dev (header-only)
find_package(spdlog CONFIG REQUIRED)               # libspdlog-dev (built against the external fmt)
find_package(CURL REQUIRED)                        # libcurl4-openssl-dev

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
