// A small reader of C++ source, enough to name every autograd node core can record: comments
// are blanked, brackets matched, and names followed from a record call to the literals that
// reach it. Anything it cannot follow is reported, never guessed.
#include "tests/support/op_names.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>

namespace strata::testing {
namespace {

namespace fs = std::filesystem;
using Names = std::set<std::string>;

/// Replaces comments by spaces (newlines kept, so offsets and line numbers stay valid).
std::string blank_comments(const std::string& s) {
  std::string out = s;
  enum { code, line, block, str, chr } st = code;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i], n = i + 1 < s.size() ? s[i + 1] : '\0';
    switch (st) {
      case code:
        if (c == '/' && n == '/')
          st = line, out[i] = ' ';
        else if (c == '/' && n == '*')
          st = block, out[i] = ' ', out[++i] = ' ';
        else if (c == '"')
          st = str;
        else if (c == '\'')
          st = chr;
        break;
      case line:
        if (c == '\n')
          st = code;
        else
          out[i] = ' ';
        break;
      case block:
        if (c == '*' && n == '/')
          st = code, out[i] = ' ', out[++i] = ' ';
        else if (c != '\n')
          out[i] = ' ';
        break;
      case str:
      case chr:
        if (c == '\\')
          ++i;
        else if (c == (st == str ? '"' : '\''))
          st = code;
        break;
    }
  }
  return out;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

Names literals(const std::string& s) {
  static const std::regex lit(R"re("((?:[^"\\]|\\.)*)")re");
  Names out;
  for (std::sregex_iterator it(s.begin(), s.end(), lit), end; it != end; ++it) {
    out.insert((*it)[1]);
  }
  return out;
}

/// The position of the bracket closing the one at `open` (npos if unbalanced).
size_t matching(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"' || c == '\'') {
      for (++i; i < s.size() && s[i] != c; ++i) {
        if (s[i] == '\\') ++i;
      }
    } else if (c == '(' || c == '[' || c == '{') {
      ++depth;
    } else if ((c == ')' || c == ']' || c == '}') && --depth == 0) {
      return i;
    }
  }
  return std::string::npos;
}

/// The top-level comma-separated pieces of s[open + 1, close).
std::vector<std::string> split_args(const std::string& s, size_t open, size_t close) {
  std::vector<std::string> out;
  size_t start = open + 1;
  for (size_t i = open + 1; i < close; ++i) {
    char c = s[i];
    if (c == '(' || c == '[' || c == '{' || c == '"' || c == '\'') {
      i = c == '"' || c == '\'' ? s.find(c, i + 1) : matching(s, i);
      if (i == std::string::npos) break;
    } else if (c == ',') {
      out.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  out.push_back(trim(s.substr(start, close - start)));
  return out;
}

struct Function {
  std::string name;
  std::vector<std::string> params;
  size_t body_open = 0, body_close = 0;
};

class SourceFile {
 public:
  SourceFile(std::string name, const std::string& text)
      : name_(std::move(name)), text_(blank_comments(text)) {
    find_functions();
  }
  const std::string& text() const { return text_; }
  int line_of(size_t pos) const {
    return 1 + static_cast<int>(std::count(text_.begin(), text_.begin() + pos, '\n'));
  }
  const std::string& name() const { return name_; }

  /// The names an expression used as an op name can take, or nullopt.
  std::optional<Names> resolve(size_t pos, const std::string& expr, std::set<std::string>& seen);

 private:
  void find_functions();
  const Function* enclosing(size_t pos) const;
  std::optional<Names> resolve_parameter(const Function& fn, size_t k, std::set<std::string>& seen);

  std::string name_;
  std::string text_;
  std::vector<Function> functions_;
};

void SourceFile::find_functions() {
  static const std::regex head(R"(\b([A-Za-z_]\w*)\s*\()");
  static const std::set<std::string> keywords = {"if",    "for",    "while",  "switch",
                                                 "catch", "return", "sizeof", "decltype"};
  for (std::sregex_iterator it(text_.begin(), text_.end(), head), end; it != end; ++it) {
    std::string name = (*it)[1];
    if (keywords.count(name)) continue;
    size_t open = static_cast<size_t>(it->position(0) + it->length(0) - 1);
    size_t close = matching(text_, open);
    if (close == std::string::npos) continue;
    size_t after = text_.find_first_not_of(" \t\n", close + 1);
    for (const char* q : {"const", "override", "noexcept"}) {
      if (after != std::string::npos && text_.compare(after, strlen(q), q) == 0) {
        after = text_.find_first_not_of(" \t\n", after + strlen(q));
      }
    }
    if (after == std::string::npos || text_[after] != '{') continue;
    size_t body_close = matching(text_, after);
    if (body_close == std::string::npos) continue;
    functions_.push_back({name, split_args(text_, open, close), after, body_close});
  }
}

const Function* SourceFile::enclosing(size_t pos) const {
  const Function* best = nullptr;
  for (const Function& f : functions_) {
    if (f.body_open < pos && pos < f.body_close && (!best || f.body_open > best->body_open)) {
      best = &f;
    }
  }
  return best;
}

std::optional<Names> SourceFile::resolve(size_t pos, const std::string& raw,
                                         std::set<std::string>& seen) {
  static const std::regex literal(R"re(^"((?:[^"\\]|\\.)*)"$)re");
  static const std::regex call(R"(^([A-Za-z_]\w*)\s*\([^()]*\)$)");
  static const std::regex ident(R"(^[A-Za-z_]\w*$)");
  std::string expr = trim(raw);
  std::smatch m;
  if (std::regex_match(expr, m, literal)) return Names{m[1]};
  if (std::regex_match(expr, m, call)) {  // a name function: its body's literals
    for (const Function& f : functions_) {
      if (f.name == m[1].str()) {
        Names n = literals(text_.substr(f.body_open, f.body_close - f.body_open));
        if (!n.empty()) return n;
      }
    }
    return std::nullopt;
  }
  if (!std::regex_match(expr, ident)) return std::nullopt;
  const Function* fn = enclosing(pos);
  if (!fn) return std::nullopt;
  // A local `const char* expr = <initialiser>;` before pos: the initialiser's literals.
  std::regex local("const\\s+char\\s*\\*\\s*" + expr + "\\s*=([^;]*);");
  std::string body = text_.substr(fn->body_open, pos - fn->body_open);
  std::optional<Names> found;
  for (std::sregex_iterator it(body.begin(), body.end(), local), end; it != end; ++it) {
    found = literals((*it)[1]);
  }
  if (found && !found->empty()) return found;
  // A `const char* expr` parameter: whatever the callers pass in that position.
  std::regex param("^const\\s+char\\s*\\*\\s*" + expr + "(\\s*=.*)?$");
  for (size_t k = 0; k < fn->params.size(); ++k) {
    if (std::regex_match(fn->params[k], param)) return resolve_parameter(*fn, k, seen);
  }
  return std::nullopt;
}

std::optional<Names> SourceFile::resolve_parameter(const Function& fn, size_t k,
                                                   std::set<std::string>& seen) {
  std::string key = fn.name + "#" + std::to_string(k);
  if (!seen.insert(key).second) return Names{};  // a recursive call adds nothing new
  std::regex call_re("\\b" + fn.name + "\\s*\\(");
  static const std::regex declaration(R"(^const\s+char\s*\*)");
  Names out;
  bool any_call = false;
  for (std::sregex_iterator it(text_.begin(), text_.end(), call_re), end; it != end; ++it) {
    size_t open = static_cast<size_t>(it->position(0) + it->length(0) - 1);
    size_t close = matching(text_, open);
    if (close == std::string::npos) continue;
    std::vector<std::string> args = split_args(text_, open, close);
    if (args.size() <= k || std::regex_search(args[k], declaration)) continue;  // a definition
    std::optional<Names> r = resolve(open, args[k], seen);
    if (!r) return std::nullopt;
    out.insert(r->begin(), r->end());
    any_call = true;
  }
  if (!any_call) return std::nullopt;
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void scan_source(const std::string& file, const std::string& text, bool name_tables,
                 OpNameScan& out) {
  SourceFile src(file, text);
  const std::string& s = src.text();
  static const std::regex record_re(R"(\brecord(_fused)?\s*\()");
  static const std::regex declaration(R"(^const\s+char\s*\*)");
  for (std::sregex_iterator it(s.begin(), s.end(), record_re), end; it != end; ++it) {
    size_t open = static_cast<size_t>(it->position(0) + it->length(0) - 1);
    size_t close = matching(s, open);
    std::string first = close == std::string::npos ? "" : split_args(s, open, close)[0];
    if (std::regex_search(first, declaration)) continue;  // record's own declaration
    std::set<std::string> seen;
    std::optional<Names> names = src.resolve(open, first, seen);
    if (names && !names->empty()) {
      out.names.insert(names->begin(), names->end());
    } else {
      out.unresolved.push_back(file + ":" + std::to_string(src.line_of(open)) + ": " + it->str() +
                               first + ", ...)");
    }
  }
  if (!name_tables) return;
  static const std::regex table(R"(\bkNames\s*\[\s*\]\s*=\s*\{)");
  for (std::sregex_iterator it(s.begin(), s.end(), table), end; it != end; ++it) {
    size_t open = static_cast<size_t>(it->position(0) + it->length(0) - 1);
    size_t close = matching(s, open);
    if (close == std::string::npos) continue;
    Names n = literals(s.substr(open, close - open));
    out.names.insert(n.begin(), n.end());
  }
}

OpNameScan scan_core(const std::string& source_dir) {
  OpNameScan out;
  fs::path core = fs::path(source_dir) / "core";
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(core)) {
    if (e.is_regular_file() && (e.path().extension() == ".cpp" || e.path().extension() == ".cu")) {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& p : files) {
    bool tables = p.parent_path() == core / "ops";
    scan_source(fs::relative(p, source_dir).string(), read_file(p), tables, out);
  }
  return out;
}

std::set<std::string> read_coverage_reports(const std::string& dir, int* files) {
  std::set<std::string> out;
  int count = 0;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".txt") continue;
    ++count;
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.insert(line);
    }
  }
  if (files) *files = count;
  return out;
}

}  // namespace strata::testing
