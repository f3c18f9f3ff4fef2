#pragma once
/// File helpers. Every file diffgentor produces is written to a temporary name in the target's own
/// folder and renamed over the target, so a crash never leaves a half-written file that resume would
/// trust (docs/batch-runner.md, "Differences from the Python tool": atomic writes).
#include <cstdint>
#include <string>
#include <string_view>

namespace dg {

/// Marker inside temporary file names; leftovers are removed at start-up.
inline constexpr std::string_view kTempMarker = ".dgtmp.";

/// Writes `bytes` to `path` atomically (temp file + fsync + rename); creates parent folders.
/// Throws std::runtime_error naming the path on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

/// Reads a whole file; throws std::runtime_error naming the path.
std::string read_file_bytes(const std::string& path);

/// Reads an input file a user named: only a regular file (a directory, FIFO, device or socket is refused
/// without opening it for a blocking read) of at most `max_bytes`. Throws std::runtime_error saying which.
std::string read_input_file(const std::string& path, int64_t max_bytes);

/// Removes leftover temporary files (from killed runs, untouched for 10 minutes) below `dir`;
/// returns how many.
int remove_stale_temp_files(const std::string& dir);

}  // namespace dg
