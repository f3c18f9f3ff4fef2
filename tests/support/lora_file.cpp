#include "lora_file.hpp"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

namespace dg::test {

void write_tiny_proj_out_lora(const std::string& path, int seed) {
  const int64_t out = 128, in = 32, rank = 2;
  std::vector<float> a(static_cast<std::size_t>(rank * in)), b(static_cast<std::size_t>(out * rank));
  for (std::size_t k = 0; k < a.size(); ++k) a[k] = 0.3f * std::sin(0.7f * float(k) + float(seed));
  for (std::size_t k = 0; k < b.size(); ++k) b[k] = 0.3f * std::cos(1.3f * float(k) + float(seed));
  const std::size_t na = a.size() * 4, nb = b.size() * 4;
  const nlohmann::json header = {
      {"transformer.proj_out.lora_A.weight", {{"dtype", "F32"}, {"shape", {rank, in}}, {"data_offsets", {0, na}}}},
      {"transformer.proj_out.lora_B.weight",
       {{"dtype", "F32"}, {"shape", {out, rank}}, {"data_offsets", {na, na + nb}}}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t length = text.size();
  std::ofstream f(path, std::ios::binary);
  for (int k = 0; k < 8; ++k) f.put(static_cast<char>((length >> (8 * k)) & 0xFF));  // little-endian
  f << text;
  f.write(reinterpret_cast<const char*>(a.data()), static_cast<std::streamsize>(na));  // x86: little-endian floats
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(nb));
}

}  // namespace dg::test
