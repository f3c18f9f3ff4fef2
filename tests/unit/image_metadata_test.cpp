// The generation parameters inside PNG, JPEG and WebP files (include/diffgentor/image_metadata.hpp), and the input
// side of docs/batch-runner.md's image rules: alpha and 16-bit inputs.
#include "diffgentor/image_metadata.hpp"

#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "diffgentor/image_io.hpp"

using namespace dg;

namespace {

Image gradient(int w, int h) {
  Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (std::size_t k = 0; k < img.rgb.size(); ++k) img.rgb[k] = static_cast<uint8_t>((k * 7 + k / 31) % 256);
  return img;
}

ImageParameters sample() {
  ImageParameters p;
  p.instruction = "make the sky purple";
  p.negative = "blurry";
  p.steps = 40;
  p.guidance = 1.0;
  p.true_cfg = 4.0;
  p.seed = 1234567890123ULL;
  p.width = 1024;
  p.height = 768;
  p.model = "Qwen/Qwen-Image-Edit-2511";
  p.model_type = "qwen";
  p.enhanced = "Make the sky purple, keep the horizon: no other change";
  p.version = "0.1.0";
  return p;
}

}  // namespace

TEST(ImageMetadata, TextInTheA1111Style) {
  EXPECT_EQ(parameters_text(sample()),
            "make the sky purple\nNegative prompt: blurry\nSteps: 40, Sampler: FlowMatchEuler, CFG scale: 1, True CFG "
            "scale: 4, Seed: 1234567890123, Size: 1024x768, Model: Qwen/Qwen-Image-Edit-2511, Model type: qwen, "
            "Enhanced prompt: \"Make the sky purple, keep the horizon: no other change\", Version: diffgentor 0.1.0");
  ImageParameters p = sample();
  p.negative.reset();
  p.true_cfg.reset();
  p.enhanced.clear();
  p.guidance = 2.5;
  p.model = "/models/a,b";
  p.loras = "lightning.safetensors:1;style.safetensors:0.5";
  EXPECT_EQ(
      parameters_text(p),
      "make the sky purple\nSteps: 40, Sampler: FlowMatchEuler, CFG scale: 2.5, Seed: 1234567890123, Size: "
      "1024x768, Model: \"/models/a,b\", Model type: qwen, LoRA: \"lightning.safetensors:1;style.safetensors:0.5\", "
      "Version: diffgentor 0.1.0");
}

TEST(ImageMetadata, EmbeddedAndReadBackInEveryFormat) {
  const Image img = gradient(48, 32);
  const std::string text = parameters_text(sample()) + "\nunicode: caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x8c\x85";
  for (const char* ext : {".png", ".jpg", ".webp"}) {
    SCOPED_TRACE(ext);
    const std::string plain = encode_image(img, ext, {90, std::nullopt});
    EXPECT_FALSE(read_parameters(plain));
    const std::string with = embed_parameters(plain, ext, text);
    ASSERT_TRUE(read_parameters(with));
    EXPECT_EQ(*read_parameters(with), text);
    // Still a valid file of the same picture: the decoders read it, and the pixels are those of the plain file.
    const Image a = decode_image(plain, 1 << 20), b = decode_image(with, 1 << 20);
    EXPECT_EQ(b.width, 48);
    EXPECT_EQ(b.height, 32);
    EXPECT_EQ(a.rgb, b.rgb);
    EXPECT_EQ(exif_orientation(with), 1);
  }
  EXPECT_EQ(embed_parameters("BM....", ".bmp", text), "BM....");  // no metadata slot: unchanged
  EXPECT_THROW(embed_parameters("not a png", ".png", text), ImageError);
}

TEST(ImageMetadata, JpegTextIsCutToItsSegment) {
  const std::string plain = encode_image(gradient(16, 16), ".jpg");
  const std::string text(40000, 'x');  // 80 000 bytes as UTF-16: more than one APP1 segment holds
  const auto back = read_parameters(embed_parameters(plain, ".jpg", text));
  ASSERT_TRUE(back);
  EXPECT_GT(back->size(), 30000u);
  EXPECT_LT(back->size(), text.size());
  EXPECT_EQ(*back, text.substr(0, back->size()));
  // The WebP EXIF chunk has no such limit.
  EXPECT_EQ(*read_parameters(embed_parameters(encode_image(gradient(16, 16), ".webp"), ".webp", text)), text);
}

TEST(ImageInputs, AlphaIsDroppedAndSixteenBitsKeepTheirHighByte) {
  cv::Mat rgba(2, 2, CV_8UC4, cv::Scalar(30, 20, 10, 0));  // BGRA, fully transparent
  std::vector<uchar> png;
  cv::imencode(".png", rgba, png);
  const Image a = decode_image(std::string(png.begin(), png.end()), 100);
  EXPECT_EQ(a.rgb[0], 10);  // R, not composited over any background (PIL's convert("RGB"))
  EXPECT_EQ(a.rgb[2], 30);
  cv::Mat deep(2, 2, CV_16UC3, cv::Scalar(0x12ff, 0x3480, 0xab01));  // BGR
  cv::imencode(".png", deep, png);
  const Image d = decode_image(std::string(png.begin(), png.end()), 100);
  EXPECT_EQ(d.rgb[0], 0xab);  // the high byte; OpenCV alone would round 0x3480 / 256 up to 0x35
  EXPECT_EQ(d.rgb[1], 0x34);
  EXPECT_EQ(d.rgb[2], 0x12);
  cv::Mat grey(2, 2, CV_16UC1, cv::Scalar(0x4321));
  cv::imencode(".png", grey, png);
  const Image g = decode_image(std::string(png.begin(), png.end()), 100);
  EXPECT_EQ(g.rgb[0], 0x43);
  EXPECT_EQ(g.rgb[1], 0x43);
}
