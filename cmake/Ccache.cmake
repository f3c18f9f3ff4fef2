# Use ccache when it is installed: a rebuild after `rm -rf build` then takes seconds, not minutes.
find_program(DG_CCACHE ccache)
if(DG_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${DG_CCACHE}")
  message(STATUS "diffgentor: using ccache at ${DG_CCACHE}")
endif()
