// `diffgentor` with the test pipeline: the real CLI, runner and I/O, for end-to-end runner tests.
#include "diffgentor/cli.hpp"
#include "test_backend.hpp"

int main(int argc, char** argv) { return dg::app_main(argc, argv, dg::test::test_backend()); }
