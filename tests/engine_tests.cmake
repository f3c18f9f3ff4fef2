# The libtorch engine's tests, in one process: one file per model type plus the shared ones (engine/fixture.hpp
# makes each type's tiny bundle once); a new engine/<type>_test.cpp is picked up without editing this file.
# Included by tests/CMakeLists.txt, and by an engine-only build given -DDG_GTEST_SOURCE (the top CMakeLists.txt):
# they need the engine, GoogleTest and the two torch-free helpers below, none of the command line's libraries.
add_library(dg_engine_test_support STATIC
  ${PROJECT_SOURCE_DIR}/tests/support/process.cpp
  ${PROJECT_SOURCE_DIR}/tests/support/lora_file.cpp
)
target_include_directories(dg_engine_test_support PUBLIC ${PROJECT_SOURCE_DIR}/tests/support)
dg_warnings(dg_engine_test_support)
target_link_libraries(dg_engine_test_support PUBLIC dg::json Threads::Threads)

file(GLOB DG_ENGINE_TEST_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/engine/*.cpp)
add_executable(dg_engine_tests ${DG_ENGINE_TEST_SOURCES})
dg_warnings(dg_engine_tests)
target_include_directories(dg_engine_tests PRIVATE ${PROJECT_SOURCE_DIR}/src/models)
target_link_libraries(dg_engine_tests PRIVATE dg_engine dg_engine_test_support GTest::gtest_main)
target_compile_definitions(dg_engine_tests PRIVATE DG_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_test(NAME engine COMMAND dg_engine_tests)
set_tests_properties(engine PROPERTIES TIMEOUT 600)
