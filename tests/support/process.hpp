#pragma once
// Runs the diffgentor binaries as real child processes for end-to-end tests.
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace dg::test {

struct ProcessResult {
  int exit_code = -1;  ///< exit status, or 128 + signal
  std::string out, err;
};

/// Starts `argv` with extra environment variables; stdout/stderr go to files under `io_dir`.
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& io_dir);
/// Waits for a spawned process and collects its output.
ProcessResult wait_for(pid_t pid, const std::string& io_dir);
/// spawn + wait_for.
ProcessResult run_process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                          const std::string& io_dir);

/// A fresh temporary directory, removed by the destructor.
struct TempDir {
  TempDir();
  ~TempDir();
  std::string path;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);

}  // namespace dg::test
