#pragma once
// A Backend for runner tests where no real model is needed: the pipeline is deterministic C++ that
// depends on every input (each image, the instruction, the seed, the steps), with knobs set through
// environment variables so a test can make rows slow, fail once, or fail always:
//   DG_TESTPIPE_DELAY_MS   sleep this long in every edit() call
//   DG_TESTPIPE_CALL_LOG   append "<index>\n" to this file on every edit() call
//   instruction containing FAIL_ALWAYS -> edit() throws every time
//   instruction containing FAIL_ONCE   -> edit() throws on the first attempt of that row
//   instruction containing INPUT_ERROR -> edit() throws InputError (never retried)
#include "diffgentor/backend.hpp"

namespace dg::test {

Backend test_backend();

/// The image the test pipeline produces for a request (exposed for assertions).
Image test_pipeline_output(const EditRequest& request);

}  // namespace dg::test
