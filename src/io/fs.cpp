#include "diffgentor/fs.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace dg {

void write_file_atomic(const std::string& path, std::string_view bytes) {
  static std::atomic<unsigned> counter{0};
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  // The temporary name keeps at most 64 bytes of the target's name, so a target name near the file system's
  // limit (255 bytes) still has a temporary name that fits.
  const fs::path tmp = target.parent_path() / fmt::format(".{}{}{}.{}", target.filename().string().substr(0, 64),
                                                          kTempMarker, getpid(), counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot create {}: {}", tmp.string(), std::strerror(errno)));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(err)));
    }
    done += static_cast<std::size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(err)));
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot rename into {}: {}", path, std::strerror(err)));
  }
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error(fmt::format("cannot read {}", path));
  return ss.str();
}

std::string read_input_file(const std::string& path, int64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error(fmt::format("cannot open: {}", std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) throw std::runtime_error("is a directory, not an image file");
  if (!S_ISREG(st.st_mode)) throw std::runtime_error("is not a regular file (a FIFO, device or socket)");
  if (st.st_size > max_bytes)
    throw std::runtime_error(fmt::format("is {} bytes, over the limit of {} bytes", st.st_size, max_bytes));
  // O_NONBLOCK: should the path have become a FIFO since the stat, opening it does not wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open: {}", std::strerror(errno)));
  struct stat again {};
  if (::fstat(fd, &again) != 0 || !S_ISREG(again.st_mode)) {
    ::close(fd);
    throw std::runtime_error("is not a regular file (a FIFO, device or socket)");
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(fmt::format("cannot read: {}", std::strerror(err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (static_cast<int64_t>(out.size()) > max_bytes) {
      ::close(fd);
      throw std::runtime_error(fmt::format("grew past the limit of {} bytes while being read", max_bytes));
    }
  }
  ::close(fd);
  return out;
}

int remove_stale_temp_files(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > 1 && name[0] == '.' && name.find(kTempMarker) != std::string::npos && it->is_regular_file(ec)) {
      // Another shard may be writing into the same folder right now: only files untouched for
      // ten minutes are leftovers (a temporary file lives for the time of one write).
      const auto age = fs::file_time_type::clock::now() - fs::last_write_time(it->path(), ec);
      if (!ec && age > std::chrono::minutes(10) && fs::remove(it->path(), ec)) ++removed;
    }
  }
  return removed;
}

}  // namespace dg
