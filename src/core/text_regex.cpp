#include "diffgentor/text_regex.hpp"

#include <oniguruma.h>
#include <utf8proc.h>

#include <array>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace dg {

namespace {

void onig_init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}

std::string utf8_of(int32_t cp) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(cp, buf);
  return std::string(reinterpret_cast<char*>(buf), static_cast<std::size_t>(n));
}

}  // namespace

Regex::Regex(const std::string& pattern) {
  onig_init_once();
  OnigRegex reg = nullptr;
  OnigErrorInfo info;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int rc = onig_new(&reg, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &info);
  if (rc != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, rc, &info);
    throw std::runtime_error("invalid regex '" + pattern + "': " + reinterpret_cast<char*>(msg));
  }
  regex_ = reg;
}

Regex::~Regex() {
  if (regex_) onig_free(static_cast<OnigRegex>(regex_));
}

Regex::Regex(Regex&& o) noexcept : regex_(o.regex_) { o.regex_ = nullptr; }

Regex& Regex::operator=(Regex&& o) noexcept {
  std::swap(regex_, o.regex_);
  return *this;
}

std::vector<std::pair<std::size_t, std::size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  const auto* begin = reinterpret_cast<const OnigUChar*>(text.data());
  const auto* end = begin + text.size();
  OnigRegion* region = onig_region_new();
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const int r = onig_search(static_cast<OnigRegex>(regex_), begin, end, begin + pos, end, region, ONIG_OPTION_NONE);
    if (r < 0) break;  // ONIG_MISMATCH (or an error): no more matches
    const auto b = static_cast<std::size_t>(region->beg[0]), e = static_cast<std::size_t>(region->end[0]);
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {  // empty match: step over one UTF-8 character
      pos = b + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  onig_region_free(region, 1);
  return out;
}

std::string regex_escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

std::string normalize_unicode(std::string_view text, NormalForm form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::NFC: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::NFD: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::NFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::NFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* out = nullptr;
  const auto n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &out, static_cast<utf8proc_option_t>(options));
  if (n < 0) return std::string(text);
  std::string result(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  std::free(out);
  return result;
}

std::string lowercase_unicode(std::string_view text) {
  std::string out;
  utf8proc_ssize_t pos = 0;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  while (pos < static_cast<utf8proc_ssize_t>(text.size())) {
    utf8proc_int32_t cp;
    const auto n = utf8proc_iterate(p + pos, static_cast<utf8proc_ssize_t>(text.size()) - pos, &cp);
    if (n <= 0) {  // invalid byte: keep it
      out += text[static_cast<std::size_t>(pos)];
      ++pos;
      continue;
    }
    out += utf8_of(utf8proc_tolower(cp));
    pos += n;
  }
  return out;
}

const std::string& byte_to_unicode(unsigned char b) {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int next = 256;
    for (int c = 0; c < 256; ++c) {
      const bool printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
      t[c] = utf8_of(printable ? c : next++);
    }
    return t;
  }();
  return table[b];
}

}  // namespace dg
