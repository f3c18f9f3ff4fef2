#pragma once
/// RFC 4180 CSV reading and writing. Reading keeps going past malformed records and reports them
/// per record, so one bad line never makes the rest of a manifest unreadable.
#include <string>
#include <string_view>
#include <vector>

namespace dg {

struct CsvRecord {
  std::vector<std::string> fields;
  int line = 0;       ///< 1-based line where the record starts
  std::string error;  ///< non-empty when the record is malformed (quoting)
};

/// Parses a whole CSV text: optional UTF-8 BOM, CRLF or LF line ends, quoted fields with embedded
/// commas, quotes ("") and newlines. Blank lines are skipped. An unterminated quote makes the rest of
/// the text one malformed record; text after a closing quote marks that record malformed.
std::vector<CsvRecord> parse_csv(std::string_view text);

/// Quotes a field when it needs it (comma, quote, CR/LF, leading/trailing space).
std::string csv_escape(std::string_view field);

/// One CSV line (with trailing "\n") from fields.
std::string csv_line(const std::vector<std::string>& fields);

}  // namespace dg
