// The safetensors reader (include/diffgentor/safetensors.hpp).
#include "diffgentor/safetensors.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "diffgentor/fs.hpp"

namespace dg {

int safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, int> sizes = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
                                                   {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
                                                   {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const std::string data = read_file_bytes(path);
  const auto fail = [&](const std::string& what) { return SafetensorsError(fmt::format("{}: {}", path, what)); };
  if (data.size() < 8) throw fail("shorter than the 8-byte header size: not a safetensors file");
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(data[static_cast<std::size_t>(k)]);
  if (n > data.size() - 8) throw fail(fmt::format("header size {} runs past the end of the file", n));
  const nlohmann::json header = nlohmann::json::parse(data.substr(8, n), nullptr, false);
  if (header.is_discarded() || !header.is_object()) throw fail("the header is not a JSON object");
  const std::size_t base = 8 + n, available = data.size() - base;
  SafetensorsFile out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (entry.is_object())
        for (const auto& [k, v] : entry.items())
          if (v.is_string()) out.metadata[k] = v.get<std::string>();
      continue;
    }
    try {
      SafeTensor t;
      t.dtype = entry.at("dtype").get<std::string>();
      t.shape = entry.at("shape").get<std::vector<int64_t>>();
      const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
      const int size = safetensors_dtype_size(t.dtype);
      if (size == 0) throw fail(fmt::format("tensor {}: unknown dtype '{}'", name, t.dtype));
      // The element count, bounded by what the data section can hold so that no product wraps around.
      uint64_t count = 1;
      const uint64_t most = available / static_cast<uint64_t>(size);
      for (int64_t d : t.shape) {
        if (d < 0) throw fail(fmt::format("tensor {}: negative dimension", name));
        if (d != 0 && count > most / static_cast<uint64_t>(d))
          throw fail(fmt::format("tensor {}: its shape holds more elements than the file has bytes for", name));
        count *= static_cast<uint64_t>(d);
      }
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > available ||
          offsets[1] - offsets[0] != count * static_cast<uint64_t>(size))
        throw fail(fmt::format("tensor {}: data_offsets do not hold {} x {} bytes inside the data section", name, count,
                               size));
      t.bytes = data.substr(base + offsets[0], offsets[1] - offsets[0]);
      out.tensors.emplace(name, std::move(t));
    } catch (const nlohmann::json::exception& e) {
      throw fail(fmt::format("tensor {}: malformed entry ({})", name, e.what()));
    }
  }
  return out;
}

}  // namespace dg
