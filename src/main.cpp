// diffgentor: wiring only. Everything else lives in dg_core (torch-free) and dg_engine (libtorch).
#include "diffgentor/cli.hpp"
#include "diffgentor/torch_runtime.hpp"

int main(int argc, char** argv) { return dg::app_main(argc, argv, dg::torch_backend()); }
