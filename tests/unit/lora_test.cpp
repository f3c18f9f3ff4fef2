// The safetensors reader and LoRA file naming (include/diffgentor/safetensors.hpp, include/diffgentor/lora.hpp),
// against files the safetensors library wrote (tests/data/lora/README.md). The merge itself is pinned against
// diffusers' load_lora_weights + fuse_lora by the parity harness (tools/parity/parity.py, run_lora).
#include "diffgentor/lora.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>

#include "diffgentor/fs.hpp"
#include "diffgentor/safetensors.hpp"
#include "testdata.hpp"

using namespace dg;
using dg::test::testdata_dir;
using dg::test::testdata_json;

namespace {

std::string file(const std::string& name) { return testdata_dir() + "/lora/" + name + ".safetensors"; }

// The value of element k, decoded from the file's bytes (F32 directly; BF16 as the high half of an F32).
double element(const SafeTensor& t, std::size_t k) {
  if (t.dtype == "F32") {
    float f;
    std::memcpy(&f, t.bytes.data() + 4 * k, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, t.bytes.data() + 2 * k, 2);
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

TEST(Safetensors, ReadsWhatTheLibraryWrote) {
  const std::map<std::string, std::string> dtypes = {{"float32", "F32"}, {"bfloat16", "BF16"}, {"float16", "F16"}};
  for (const auto& [name, expected] : testdata_json("lora/expected.json").items()) {
    const SafetensorsFile f = read_safetensors(file(name));
    ASSERT_EQ(f.tensors.size(), expected["tensors"].size()) << name;
    for (const auto& [key, want] : expected["tensors"].items()) {
      const SafeTensor& t = f.tensors.at(key);
      EXPECT_EQ(t.dtype, dtypes.at(want["dtype"].get<std::string>())) << key;
      EXPECT_EQ(t.shape, want["shape"].get<std::vector<int64_t>>()) << key;
      if (t.dtype == "F16") continue;  // the alphas: decoded by lora_layers, checked below
      const auto values = want["values"].get<std::vector<double>>();
      for (std::size_t k = 0; k < values.size(); ++k) EXPECT_EQ(element(t, k), values[k]) << key << "[" << k << "]";
    }
    for (const auto& [k, v] : expected["metadata"].items()) EXPECT_EQ(f.metadata.at(k), v.get<std::string>()) << name;
  }
}

TEST(Safetensors, DamagedFilesNameWhatIsWrong) {
  const std::string dir = ::testing::TempDir();
  const auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + name, std::ios::binary) << bytes;
    return dir + name;
  };
  const std::string whole = read_file_bytes(file("kohya"));
  const auto error = [](const std::string& path) {
    try {
      read_safetensors(path);
    } catch (const SafetensorsError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error(write("short.safetensors", "abc")).find("shorter than the 8-byte header size"), std::string::npos);
  EXPECT_NE(error(write("cut.safetensors", whole.substr(0, whole.size() - 4))).find("data_offsets do not hold"),
            std::string::npos);
  std::string huge = whole;
  huge[6] = '\x01';  // a header size of 2^48 and more
  EXPECT_NE(error(write("huge.safetensors", huge)).find("runs past the end of the file"), std::string::npos);
  // A shape whose element count wraps around 2^64 (2^32 x 2^32 = 0) with an empty data range.
  const std::string header = R"({"w":{"dtype":"F16","shape":[4294967296,4294967296],"data_offsets":[0,0]}})";
  std::string wrap(8, '\0');
  wrap[0] = static_cast<char>(header.size());
  EXPECT_NE(error(write("wrap.safetensors", wrap + header)).find("holds more elements than the file has bytes for"),
            std::string::npos);
}

TEST(Lora, NamingsAndAlphas) {
  auto layers_of = [](const std::string& name, const SafetensorsFile& f) {
    std::map<std::string, LoraLayer> by;
    for (const LoraLayer& l : lora_layers(f, file(name))) by.emplace(l.target, l);
    return by;
  };
  const SafetensorsFile comfy = read_safetensors(file("comfy"));
  auto c = layers_of("comfy", comfy);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_FALSE(c.at("transformer_blocks.0.attn.to_q").kohya);
  EXPECT_EQ(c.at("transformer_blocks.0.attn.to_q").alpha, 1.0);      // an F16 alpha
  EXPECT_EQ(c.at("transformer_blocks.0.img_mlp.net.2").alpha, 3.0);  // a BF16 alpha
  EXPECT_EQ(c.at("transformer_blocks.0.attn.to_q").down->shape, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(c.at("transformer_blocks.0.attn.to_q").up->shape, (std::vector<int64_t>{6, 2}));

  const SafetensorsFile kohya = read_safetensors(file("kohya"));
  auto k = layers_of("kohya", kohya);
  ASSERT_EQ(k.size(), 1u);
  EXPECT_TRUE(k.at("transformer_blocks_0_attn_to_q").kohya);
  EXPECT_EQ(k.at("transformer_blocks_0_attn_to_q").alpha, 4.0);

  // diffusers' metadata: lora_alpha 8, r 2 -> scaling 4 = alpha / rank with alpha 8 for this rank-2 layer.
  const SafetensorsFile diffusers = read_safetensors(file("diffusers"));
  auto d = layers_of("diffusers", diffusers);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d.at("transformer_blocks.0.attn.to_q").alpha, 8.0);

  const auto error = [](const std::string& name) {
    const SafetensorsFile f = read_safetensors(file(name));
    try {
      lora_layers(f, file(name));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error("text_encoder")
                .find("2 of 2 tensors adapt nothing this runtime can place "
                      "(text_encoder.layers.0.q_proj.lora_A.weight"),
            std::string::npos)
      << error("text_encoder");
  EXPECT_NE(error("half").find("layer transformer_blocks.0.attn.to_k has only its down (lora_A) half"),
            std::string::npos)
      << error("half");
}

TEST(Lora, FileAndScale) {
  EXPECT_EQ(parse_lora_spec("a.safetensors").scale, 1.0);
  const LoraSpec s = parse_lora_spec("dir/a.safetensors:0.75");
  EXPECT_EQ(s.path, "dir/a.safetensors");
  EXPECT_EQ(s.scale, 0.75);
  EXPECT_EQ(parse_lora_spec("x:-1").scale, -1.0);
  EXPECT_EQ(parse_lora_spec("we:ird/a.safetensors").path, "we:ird/a.safetensors");  // not a number: all path
  EXPECT_EQ(parse_lora_spec("a.safetensors:nan").path, "a.safetensors:nan");
}
