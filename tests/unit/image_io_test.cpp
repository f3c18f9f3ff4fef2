#include "diffgentor/image_io.hpp"

#include <gtest/gtest.h>

using namespace dg;

namespace {

// Left half red, right half blue.
Image two_halves(int w, int h) {
  Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.pixel(x, y);
      p[0] = x < w / 2 ? 220 : 10;
      p[1] = 20;
      p[2] = x < w / 2 ? 10 : 220;
    }
  return img;
}

std::string with_exif_orientation(const std::string& jpeg, uint16_t orientation) {
  std::string tiff("MM\0\x2a\0\0\0\x08", 8);
  tiff += std::string("\0\x01", 2);                    // one IFD entry
  tiff += std::string("\x01\x12\0\x03\0\0\0\x01", 8);  // Orientation, SHORT, count 1
  tiff += std::string(1, char(orientation >> 8)) + std::string(1, char(orientation & 0xff)) + std::string(2, '\0');
  tiff += std::string(4, '\0');  // no next IFD
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  const std::size_t len = payload.size() + 2;
  const std::string app1 = std::string("\xFF\xE1", 2) + char(len >> 8) + char(len & 0xff) + payload;
  return jpeg.substr(0, 2) + app1 + jpeg.substr(2);
}

bool reddish(const Image& img, int x, int y) { return img.pixel(x, y)[0] > 150 && img.pixel(x, y)[2] < 100; }
bool bluish(const Image& img, int x, int y) { return img.pixel(x, y)[2] > 150 && img.pixel(x, y)[0] < 100; }

}  // namespace

TEST(ImageIo, PngRoundTripIsLossless) {
  Image img = two_halves(7, 5);
  img.pixel(3, 2)[1] = 123;
  const Image back = decode_image(encode_image(img, ".png"), 1000);
  EXPECT_EQ(back.width, 7);
  EXPECT_EQ(back.height, 5);
  EXPECT_EQ(back.rgb, img.rgb);
  EXPECT_EQ(decode_image(encode_image(img, ".webp"), 1000).rgb, img.rgb);  // lossless WebP
}

TEST(ImageIo, SniffsDimensionsFromHeaders) {
  const Image img = two_halves(40, 20);
  for (const char* ext : {".png", ".jpg", ".bmp", ".webp"}) {
    const auto dims = sniff_dimensions(encode_image(img, ext));
    ASSERT_TRUE(dims.has_value()) << ext;
    EXPECT_EQ(*dims, std::make_pair(40, 20)) << ext;
  }
  EXPECT_EQ(sniff_dimensions(std::string("GIF89a\x03\x01\x02\x00", 10)), std::make_pair(259, 2));
  EXPECT_FALSE(sniff_dimensions("not an image").has_value());
}

TEST(ImageIo, AppliesExifOrientation) {
  const std::string jpeg = encode_image(two_halves(40, 20), ".jpg");
  EXPECT_EQ(exif_orientation(jpeg), 1);
  const std::string rotated = with_exif_orientation(jpeg, 6);
  EXPECT_EQ(exif_orientation(rotated), 6);
  const Image img = decode_image(rotated, 1 << 20);
  ASSERT_EQ(img.width, 20);  // rotated 90 degrees clockwise for display: the left half is now on top
  ASSERT_EQ(img.height, 40);
  EXPECT_TRUE(reddish(img, 10, 5));
  EXPECT_TRUE(bluish(img, 10, 35));
  const Image flipped = decode_image(with_exif_orientation(jpeg, 2), 1 << 20);  // mirrored
  EXPECT_EQ(flipped.width, 40);
  EXPECT_TRUE(bluish(flipped, 5, 10));
  EXPECT_TRUE(reddish(flipped, 35, 10));
  const Image upside = decode_image(with_exif_orientation(jpeg, 8), 1 << 20);  // 90 counter-clockwise
  EXPECT_TRUE(bluish(upside, 10, 5));
  EXPECT_TRUE(reddish(upside, 10, 35));
}

TEST(ImageIo, CorruptAndEmptyInputsAreErrors) {
  EXPECT_THROW(decode_image("", 100), ImageError);
  try {
    decode_image("this is not an image at all", 100);
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot decode"), std::string::npos);
  }
  std::string truncated = encode_image(two_halves(40, 20), ".png");
  truncated.resize(truncated.size() / 3);
  EXPECT_THROW(decode_image(truncated, 1 << 20), ImageError);
}

TEST(ImageIo, PixelLimitIsCheckedFromTheHeaderFirst) {
  // A PNG header that claims 100000 x 100000 pixels and nothing else: rejected before decoding.
  std::string bomb("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
  bomb += std::string("\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02\0\0\0", 13);
  try {
    decode_image(bomb, 178956970);
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("100000x100000 = 10000000000 pixels, over the limit of 178956970"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(decode_image(encode_image(two_halves(40, 20), ".png"), 799), ImageError);
  EXPECT_NO_THROW(decode_image(encode_image(two_halves(40, 20), ".png"), 800));
}

// The pixel limit holds before decoding for every format the decoder accepts: a TIFF declaring 15000^2
// pixels is refused from its header, a format whose size no header gives is not decoded at all.
TEST(ImageIo, PixelLimitHoldsForEveryAcceptedFormat) {
  const std::string tiff = encode_image(two_halves(40, 20), ".tif");
  ASSERT_EQ(sniff_dimensions(tiff), std::make_pair(40, 20));
  EXPECT_EQ(decode_image(tiff, 800).width, 40);
  EXPECT_THROW(decode_image(tiff, 799), ImageError);
  // A little-endian TIFF whose first IFD says 15000 x 15000 (SHORT values) and holds no pixels.
  std::string bomb("II*\0\x08\0\0\0\x02\0", 10);
  bomb += std::string("\x00\x01\x03\x00\x01\x00\x00\x00\x98\x3a\x00\x00", 12);  // 256 ImageWidth = 15000
  bomb += std::string("\x01\x01\x03\x00\x01\x00\x00\x00\x98\x3a\x00\x00", 12);  // 257 ImageLength = 15000
  try {
    decode_image(bomb, 178956970);
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("15000x15000 = 225000000 pixels, over the limit"), std::string::npos)
        << e.what();
  }
  try {  // PPM: OpenCV decodes it, but its size is not read first, so it is refused
    decode_image(std::string("P6\n2 2\n255\n") + std::string(12, '\x7f'), 100);
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("not a PNG, JPEG, WebP, BMP or TIFF image"), std::string::npos) << e.what();
  }
  try {
    decode_image(std::string("GIF89a\x08\x00\x08\x00\x00\x00\x00;", 14), 100);
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("GIF images are not supported"), std::string::npos) << e.what();
  }
}
