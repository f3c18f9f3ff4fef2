#pragma once
/// A reader for the safetensors format (huggingface/safetensors, "Format"): an 8-byte little-endian header size N,
/// N bytes of JSON mapping each tensor name to {dtype, shape, data_offsets [begin, end)} (offsets into the bytes
/// after the header; "__metadata__" holds string pairs), then the tensors' bytes, row-major, little-endian.
/// Torch-free: tensors come back as bytes with their dtype name, and the caller makes tensors of them.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace dg {

struct SafetensorsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SafeTensor {
  std::string dtype;           ///< as the file names it: "F32", "F16", "BF16", "F64", "I64", ...
  std::vector<int64_t> shape;  ///< empty for a scalar
  std::string bytes;           ///< element count x dtype size bytes
};

struct SafetensorsFile {
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;  ///< "__metadata__", if any
};

/// Bytes per element of a safetensors dtype name; 0 for a name the format does not define.
int safetensors_dtype_size(const std::string& dtype);

/// Reads a whole file. Throws SafetensorsError naming the file and what is wrong: too short, a header size past the
/// end, JSON that is not an object of entries, an unknown dtype, offsets that disagree with shape and dtype or
/// leave the data section.
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace dg
