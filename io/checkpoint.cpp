// Checkpoint file format, version 2 (docs/checkpoint-format.md): groups model/, optimizer/
// (keyed by parameter name), optimizer_slice/ (ZeRO-1 pieces), rng/, sampler/, schedule/,
// extra/ and amp/ of named datasets with a CRC-32 attribute each; root attributes for the
// metadata and a manifest; a main file lists (and links to) the part files of the ranks.
#include "io/checkpoint.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "io/hdf5.h"

namespace strata::io {
namespace {

using Json = nlohmann::json;

/// Slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes.
using CrcTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr CrcTables make_crc_tables() {
  CrcTables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][b] = c;
  }
  for (int k = 1; k < 8; ++k) {
    for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
  }
  return t;
}

constexpr CrcTables kCrc = make_crc_tables();

/// Slicing-by-8 on the inverted CRC `c`; the portable path and the tail of the fast one.
uint32_t crc32_table(uint32_t c, const unsigned char* p, size_t size) {
  for (; size >= 8; size -= 8, p += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;  // little-endian hosts (x86-64, aarch64) only, like the rest of strata's I/O
    c = kCrc[7][lo & 0xFF] ^ kCrc[6][(lo >> 8) & 0xFF] ^ kCrc[5][(lo >> 16) & 0xFF] ^
        kCrc[4][lo >> 24] ^ kCrc[3][hi & 0xFF] ^ kCrc[2][(hi >> 8) & 0xFF] ^
        kCrc[1][(hi >> 16) & 0xFF] ^ kCrc[0][hi >> 24];
  }
  for (; size > 0; --size, ++p) c = kCrc[0][(c ^ *p) & 0xFF] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)
/// Carry-less multiplication folding (Intel's "Fast CRC Computation Using PCLMULQDQ", the
/// constants of Linux's crc32-pclmul for the reflected IEEE polynomial): about ten times the
/// table's speed, so checksums cost little next to the disk. `size` >= 64, a multiple of 16.
#define STRATA_CLMUL __attribute__((target("pclmul,sse4.1")))

STRATA_CLMUL inline __m128i load(const unsigned char* q) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
}

/// x * (k.low, k.high) folded onto `next`.
STRATA_CLMUL inline __m128i fold(__m128i x, __m128i k, __m128i next) {
  return _mm_xor_si128(
      _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

STRATA_CLMUL uint32_t crc32_clmul(uint32_t c, const unsigned char* p, size_t size) {
  const __m128i k12 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4);
  const __m128i k34 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);
  __m128i x1 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(c)));
  __m128i x2 = load(p + 16), x3 = load(p + 32), x4 = load(p + 48);
  for (p += 64, size -= 64; size >= 64; p += 64, size -= 64) {  // four lanes of 128 bits
    x1 = fold(x1, k12, load(p));
    x2 = fold(x2, k12, load(p + 16));
    x3 = fold(x3, k12, load(p + 32));
    x4 = fold(x4, k12, load(p + 48));
  }
  x1 = fold(fold(fold(x1, k34, x2), k34, x3), k34, x4);
  for (; size >= 16; p += 16, size -= 16) x1 = fold(x1, k34, load(p));
  // 128 -> 64 -> 32 bits, then Barrett reduction.
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(k34, x1, 0x01));
  const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
  const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 4),
                     _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00));
  const __m128i poly = _mm_set_epi64x(0x1F7011641, 0x1DB710641);  // (u', P')
  __m128i t = _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly, 0x10), mask32);
  x1 = _mm_xor_si128(x1, _mm_clmulepi64_si128(t, poly, 0x00));
  return static_cast<uint32_t>(_mm_extract_epi32(x1, 1));
}
#undef STRATA_CLMUL
#endif

std::string hex32(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

int64_t nbytes(const Tensor& t) { return t.numel() * dtype_size(t.dtype()); }

uint32_t tensor_crc(const Tensor& t) {
  return t.numel() == 0 ? 0u : crc32(t.raw_data(), static_cast<size_t>(nbytes(t)));
}

int64_t parse_int(const std::string& text, const std::string& what, const std::string& path) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  check(ec == std::errc() && end == text.data() + text.size(), "[checkpoint] ", path,
        ": attribute '", what, "' is '", text, "', not an integer; the file is damaged");
  return v;
}

Json parse_json_attr(const H5File& file, const std::string& key) {
  Json v = Json::parse(file.read_attribute(key), nullptr, false);
  check(!v.is_discarded(), "[checkpoint] ", file.path(), ": attribute '", key,
        "' is not valid JSON; the file is damaged");
  return v;
}

/// Entry names are one path component; optimizer keys "<param>/<slot>" are two.
void check_name(const std::string& group, const std::string& name) {
  bool nested = group == "optimizer" || group == "optimizer_slice";
  size_t slash = name.find('/');
  bool ok = !name.empty() &&
            (slash == std::string::npos || (nested && slash > 0 && slash + 1 < name.size() &&
                                            name.find('/', slash + 1) == std::string::npos));
  check(ok, "[checkpoint] ", group, " entry name '", name, "' must be non-empty and contain no '/'",
        nested ? " (optimizer keys: <param>/<slot>)" : "");
}

/// Writes one dataset with its checksum and records it in the manifest.
void put(H5File& file, Json& manifest, const std::string& group, const std::string& name,
         const Tensor& value) {
  check_name(group, name);
  check(value.defined(), "[checkpoint] ", group, "/", name, " is an undefined tensor");
  std::string full = group + "/" + name;
  Tensor host = value.detach().to(Device::cpu()).contiguous();
  file.write_tensor(full, host);
  file.write_dataset_attribute(full, "crc32", hex32(tensor_crc(host)));
  manifest.push_back(full);
}

/// Writes a piece of a flattened tensor: its values, with the element offset and full shape.
void put_slice(H5File& file, Json& manifest, const std::string& name, const TensorSlice& slice) {
  check(slice.values.defined() && slice.values.dim() == 1 && slice.offset >= 0 &&
            slice.offset + slice.values.numel() <= numel_of(slice.shape),
        "[checkpoint] optimizer_slice/", name, ": a slice of ", slice.values.numel(),
        " elements at offset ", slice.offset, " does not fit shape ", shape_str(slice.shape));
  put(file, manifest, "optimizer_slice", name, slice.values);
  std::string full = "optimizer_slice/" + name;
  file.write_dataset_attribute(full, "offset", std::to_string(slice.offset));
  file.write_dataset_attribute(full, "full_shape", shape_str(slice.shape));
}

/// Writes one rank's streams: rng<sub>/<name> and sampler<sub>/<name> (`sub` is "" for rank
/// 0, "/rank<N>" for the others).
void put_streams(H5File& file, Json& manifest, const std::string& sub, const RankStreams& r) {
  for (const auto& [name, s] : r.rng) {
    put(file, manifest, "rng" + sub, name,
        from_vector<int64_t>({static_cast<int64_t>(s.seed), static_cast<int64_t>(s.offset)}, {2}));
  }
  for (const auto& [name, s] : r.samplers) {
    put(file, manifest, "sampler" + sub, name, from_vector<int64_t>({s.epoch, s.cursor}, {2}));
  }
}

/// Opens `path` and checks that it is a strata checkpoint of a version this build reads.
H5File open_checked(const std::string& path) {
  std::optional<H5File> file;
  try {
    file.emplace(path, H5File::Mode::read);
  } catch (const Error& e) {
    throw Error(str_cat("[checkpoint] cannot open ", path, ": ", e.what(),
                        ". The file is missing, truncated, damaged or not HDF5; resume from "
                        "an earlier checkpoint (--resume auto skips damaged ones)"));
  }
  check(file->has_attribute("format"), "[checkpoint] ", path,
        " is not a strata checkpoint: it is an HDF5 file without the root attribute "
        "format='",
        kCheckpointFormat, "'");
  std::string format = file->read_attribute("format");
  check(format == kCheckpointFormat, "[checkpoint] ", path, " is not a strata checkpoint: its ",
        "format attribute is '", format, "', expected '", kCheckpointFormat, "'");
  check(file->has_attribute("version"), "[checkpoint] ", path,
        " has no 'version' attribute; the file is damaged");
  int64_t version = parse_int(file->read_attribute("version"), "version", path);
  check(version >= kCheckpointOldestVersion && version <= kCheckpointVersion, "[checkpoint] ", path,
        " has format version ", version, ", but this build of strata reads versions ",
        kCheckpointOldestVersion, " to ", kCheckpointVersion,
        "; use the strata that wrote it (its `strata ckpt export` writes plain arrays)");
  return std::move(*file);
}

/// A file's root attributes: a main file's metadata, or a part file's identity.
struct Header {
  CheckpointInfo info;
  int64_t part_rank = 0;  // > 0: a part file
  std::string token;
};

Header read_header(const H5File& file) {
  Header h;
  CheckpointInfo& info = h.info;
  info.path = file.path();
  info.version = parse_int(file.read_attribute("version"), "version", file.path());
  if (file.has_attribute("part_rank")) {
    h.part_rank = parse_int(file.read_attribute("part_rank"), "part_rank", file.path());
  }
  for (const char* key : {"step", "epoch", "datasets"}) {
    check(file.has_attribute(key), "[checkpoint] ", file.path(), " has no '", key,
          "' attribute; the file is incomplete or damaged");
  }
  info.step = parse_int(file.read_attribute("step"), "step", file.path());
  info.epoch = parse_int(file.read_attribute("epoch"), "epoch", file.path());
  if (file.has_attribute("token")) h.token = file.read_attribute("token");
  if (h.part_rank > 0) return h;
  for (const char* key : {"config", "layout"}) {
    check(file.has_attribute(key), "[checkpoint] ", file.path(), " has no '", key,
          "' attribute; the file is incomplete or damaged");
  }
  info.config = parse_json_attr(file, "config");
  info.layout = parse_json_attr(file, "layout");
  if (file.has_attribute("parts")) {
    Json parts = parse_json_attr(file, "parts");
    check(parts.is_array(), "[checkpoint] ", file.path(), ": the 'parts' list is not a list");
    for (const auto& p : parts) {
      check(p.is_object() && p.contains("rank") && p["rank"].is_number_integer() &&
                p.contains("file") && p["file"].is_string(),
            "[checkpoint] ", file.path(), ": a 'parts' entry is not {\"rank\", \"file\"}");
      info.parts.push_back({p["rank"].get<int64_t>(), p["file"].get<std::string>()});
    }
  }
  return h;
}

std::vector<std::string> manifest_of(const H5File& file) {
  Json names = parse_json_attr(file, "datasets");
  check(names.is_array(), "[checkpoint] ", file.path(), ": the 'datasets' manifest is not a list");
  std::vector<std::string> out;
  for (const auto& n : names) {
    check(n.is_string(), "[checkpoint] ", file.path(), ": a manifest entry is not a string");
    out.push_back(n.get<std::string>());
    check(file.has(out.back()), "[checkpoint] ", file.path(), " is incomplete: dataset '",
          out.back(), "' listed in its manifest is missing");
  }
  return out;
}

/// Reads one dataset and verifies its checksum.
Tensor read_verified(const H5File& file, const std::string& name) {
  Tensor t;
  std::string stored;
  try {
    t = file.read_tensor(name);
    stored = file.read_dataset_attribute(name, "crc32");
  } catch (const Error& e) {
    throw Error(str_cat("[checkpoint] ", file.path(), ": dataset '", name,
                        "' cannot be read: ", e.what(), "; the file is damaged"));
  }
  std::string actual = hex32(tensor_crc(t));
  check(stored == actual, "[checkpoint] ", file.path(), ": dataset '", name,
        "' fails its checksum (stored crc32 ", stored, ", data has ", actual,
        "); the file is damaged: resume from an earlier checkpoint");
  return t;
}

std::vector<int64_t> pair_of(const Tensor& t, const std::string& path, const std::string& name) {
  check(t.dtype() == DType::i64 && t.shape() == Shape{2}, "[checkpoint] ", path, ": dataset '",
        name, "' must be i64[2], got ", t.desc());
  return t.to_vector<int64_t>();
}

/// The streams `name` ("data" or "rank<N>/data") belongs to: `rank0` or ckpt.other_ranks[N-1].
/// Strips "rank<N>/" from `name`.
RankStreams& streams_of(Checkpoint& ckpt, RankStreams& rank0, const std::string& path,
                        const std::string& full, std::string& name) {
  size_t slash = name.find('/');
  if (slash == std::string::npos) return rank0;
  std::string sub = name.substr(0, slash);
  int64_t rank = 0;
  auto [end, ec] =
      std::from_chars(sub.data() + std::min<size_t>(4, sub.size()), sub.data() + sub.size(), rank);
  check(sub.rfind("rank", 0) == 0 && ec == std::errc() && end == sub.data() + sub.size() &&
            rank >= 1 && rank < (1 << 20) && name.find('/', slash + 1) == std::string::npos,
        "[checkpoint] ", path, ": dataset '", full,
        "' is not a rank's stream (expected <group>/<name> or <group>/rank<N>/<name>)");
  if (ckpt.other_ranks.size() < static_cast<size_t>(rank)) ckpt.other_ranks.resize(rank);
  name = name.substr(slash + 1);
  return ckpt.other_ranks[rank - 1];
}

Shape parse_shape(const std::string& text) {
  Shape s;
  int64_t v = 0;
  bool in_number = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      v = v * 10 + (c - '0');
      in_number = true;
    } else if (in_number) {
      s.push_back(v);
      v = 0;
      in_number = false;
    }
  }
  return s;
}

/// Runs f; HDF5 errors (metadata damage) are rethrown naming the file and `what`.
template <class F>
auto guarded(const std::string& path, const char* what, F f) {
  try {
    return f();
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind("[checkpoint]", 0) == 0) throw;
    throw Error(str_cat("[checkpoint] ", path, ": the ", what, " cannot be read: ", msg,
                        "; the file is damaged"));
  }
}

/// A checkpoint being read: the main file's and every part's datasets gather here.
struct Reading {
  Checkpoint ckpt;
  RankStreams rank0;
  std::map<std::string, std::vector<TensorSlice>> slices;  // optimizer_slice/ by key
  std::map<std::string, Tensor> amp;                       // amp/ by name
};

/// Stores `value` under `name`, refusing a name that an earlier file of the checkpoint had.
template <class Map, class V>
void insert_once(Map& map, const std::string& name, V value, const std::string& path,
                 const std::string& full) {
  check(map.emplace(name, std::move(value)).second, "[checkpoint] ", path, ": dataset '", full,
        "' is also in another file of this checkpoint; the files belong to different saves");
}

/// Places a verified dataset into its field by group; rank 0's streams gather in
/// `rd.rank0` (moved into ckpt.rng and ckpt.samplers at the end). `part` files hold only
/// other ranks' streams.
void route(Reading& rd, const H5File& file, const std::string& full, Tensor t, bool part) {
  const std::string& path = file.path();
  Checkpoint& ckpt = rd.ckpt;
  size_t slash = full.find('/');
  check(slash != std::string::npos, "[checkpoint] ", path, ": unexpected top-level dataset '", full,
        "'");
  std::string group = full.substr(0, slash), name = full.substr(slash + 1);
  if (group == "model") {
    insert_once(ckpt.model, name, t, path, full);
  } else if (group == "optimizer") {
    insert_once(ckpt.optimizer, name, t, path, full);
  } else if (group == "optimizer_slice") {
    TensorSlice s;
    s.offset = parse_int(file.read_dataset_attribute(full, "offset"), "offset", path);
    s.shape = parse_shape(file.read_dataset_attribute(full, "full_shape"));
    check(t.dim() == 1 && s.offset >= 0 && s.offset + t.numel() <= numel_of(s.shape),
          "[checkpoint] ", path, ": slice '", full, "' (", t.desc(), " at offset ", s.offset,
          ") does not fit its full shape ", shape_str(s.shape), "; the file is damaged");
    s.values = t;
    rd.slices[name].push_back(std::move(s));
  } else if (group == "extra") {
    insert_once(ckpt.extra, name, t, path, full);
  } else if (group == "amp") {
    check(!part && t.numel() == 1, "[checkpoint] ", path, ": dataset '", full,
          "' must be one value in the main file; the file is damaged");
    insert_once(rd.amp, name, t, path, full);
  } else if (group == "rng" || group == "sampler") {
    auto v = pair_of(t, path, full);
    RankStreams& r = streams_of(ckpt, rd.rank0, path, full, name);
    check(!part || &r != &rd.rank0, "[checkpoint] ", path, ": dataset '", full,
          "' is rank 0's stream, which belongs in the main file");
    if (group == "rng") {
      insert_once(r.rng, name,
                  Generator::State{static_cast<uint64_t>(v[0]), static_cast<uint64_t>(v[1])}, path,
                  full);
    } else {
      insert_once(r.samplers, name, Sampler::State{v[0], v[1]}, path, full);
    }
  } else if (group == "schedule") {
    check(name == "step" && t.numel() == 1 && static_cast<int64_t>(t.item()) == ckpt.step,
          "[checkpoint] ", path, ": dataset '", full, "' disagrees with the step attribute ",
          ckpt.step);
  } else {
    throw Error(
        str_cat("[checkpoint] ", path, ": dataset '", full, "' is in unknown group '", group, "'"));
  }
}

/// The loss scaler's state from amp/ (nullopt when the run had none): all three values.
std::optional<AmpState> amp_of(const Reading& rd, const std::string& path) {
  if (rd.amp.empty()) return std::nullopt;
  auto value = [&](const char* name) {
    auto it = rd.amp.find(name);
    check(it != rd.amp.end(), "[checkpoint] ", path, ": amp/ lacks '", name,
          "' (it needs scale, growth_tracker and skipped_steps); the file is damaged");
    return it->second.item();
  };
  check(rd.amp.size() == 3, "[checkpoint] ", path, ": amp/ holds ", rd.amp.size(),
        " datasets where scale, growth_tracker and skipped_steps were expected");
  return AmpState{value("scale"), static_cast<int64_t>(value("growth_tracker")),
                  static_cast<int64_t>(value("skipped_steps"))};
}

/// Joins the pieces of each sliced tensor into the full tensor; they must cover it exactly.
void assemble_slices(Reading& rd, const std::string& path) {
  for (auto& [name, pieces] : rd.slices) {
    std::sort(pieces.begin(), pieces.end(),
              [](const TensorSlice& a, const TensorSlice& b) { return a.offset < b.offset; });
    const TensorSlice& first = pieces.front();
    Tensor full = empty(first.shape, first.values.dtype());
    auto esize = static_cast<int64_t>(dtype_size(full.dtype()));
    int64_t next = 0;
    for (const TensorSlice& s : pieces) {
      check(s.shape == first.shape && s.values.dtype() == first.values.dtype() && s.offset == next,
            "[checkpoint] ", path, ": the slices of optimizer state '", name,
            "' do not fit together (a slice at element ", s.offset, " of ", shape_str(s.shape),
            " where element ", next, " of ", shape_str(first.shape),
            " was expected); a part file is missing or from another save");
      std::memcpy(static_cast<char*>(full.raw_data()) + next * esize, s.values.raw_data(),
                  static_cast<size_t>(s.values.numel() * esize));
      next += s.values.numel();
    }
    check(next == full.numel(), "[checkpoint] ", path, ": the slices of optimizer state '", name,
          "' cover ", next, " of its ", full.numel(), " elements; a part file is missing");
    insert_once(rd.ckpt.optimizer, name, full, path, "optimizer_slice/" + name);
  }
}

void read_datasets(Reading& rd, const H5File& file, bool part) {
  const std::string& path = file.path();
  for (const std::string& name : guarded(path, "manifest", [&] { return manifest_of(file); })) {
    Tensor t = read_verified(file, name);
    guarded(path, ("attributes of dataset '" + name + "'").c_str(), [&] {
      route(rd, file, name, t, part);
      return 0;
    });
  }
}

/// Opens the part `ref` of the main file `main` and checks that it belongs to that save.
H5File open_part(const std::string& main, const Header& h, const PartRef& ref) {
  std::string path = (std::filesystem::path(main).parent_path() / ref.file).string();
  std::optional<H5File> file;
  try {
    file.emplace(open_checked(path));
  } catch (const Error& e) {
    throw Error(str_cat("[checkpoint] ", main, " is incomplete: its part file ", path, " (rank ",
                        ref.rank, "'s state) cannot be read: ", e.what()));
  }
  Header ph = guarded(path, "root attributes", [&] { return read_header(*file); });
  check(ph.part_rank == ref.rank && ph.info.step == h.info.step && ph.token == h.token,
        "[checkpoint] ", main, ": its part file ", path, " belongs to another save (rank ",
        ph.part_rank, ", step ", ph.info.step, ", token '", ph.token, "'; expected rank ", ref.rank,
        ", step ", h.info.step, ", token '", h.token,
        "'); the checkpoint is incomplete: resume from an earlier one");
  return std::move(*file);
}

/// Opens a main file: a part file given by mistake is refused with its main file's name.
Header open_main(const std::string& path, std::optional<H5File>& file) {
  file.emplace(guarded(path, "header", [&] { return open_checked(path); }));
  Header h = guarded(path, "root attributes", [&] { return read_header(*file); });
  check(h.part_rank == 0, "[checkpoint] ", path, " is rank ", h.part_rank,
        "'s part of the checkpoint of step ", h.info.step, "; read its main file ckpt-",
        h.info.step, ".h5");
  return h;
}

std::vector<CheckpointEntry> entries_of(const H5File& file, const std::string& prefix) {
  const std::string& path = file.path();
  std::vector<CheckpointEntry> out;
  for (const std::string& name : guarded(path, "manifest", [&] { return manifest_of(file); })) {
    CheckpointEntry e;
    e.name = prefix + name;
    guarded(path, ("attributes of dataset '" + name + "'").c_str(), [&] {
      e.dtype = parse_dtype(file.read_dataset_attribute(name, "dtype"));
      e.shape = parse_shape(file.read_dataset_attribute(name, "shape"));
      return 0;
    });
    e.bytes = numel_of(e.shape) * dtype_size(e.dtype);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
#if defined(__x86_64__)
  static const bool clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  if (clmul && size >= 64) {
    size_t bulk = size & ~size_t{15};
    c = crc32_clmul(c, p, bulk);
    p += bulk;
    size -= bulk;
  }
#endif
  return ~crc32_table(c, p, size);
}

std::string part_file_name(int64_t step, int64_t rank) {
  return str_cat("ckpt-", step, ".part", rank, ".h5");
}

void write_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  const bool main = ckpt.part_rank == 0;
  check(ckpt.part_rank >= 0, "[checkpoint] part_rank must be >= 0, got ", ckpt.part_rank);
  check(main || (ckpt.rng.empty() && ckpt.samplers.empty() && ckpt.parts.empty()), "[checkpoint] ",
        path,
        ": a part file holds other ranks' streams only (rank<N>/) and "
        "lists no parts");
  H5File file(path, H5File::Mode::create, /*checksummed_metadata=*/true);
  Json manifest = Json::array();
  for (const auto& [name, t] : ckpt.model) put(file, manifest, "model", name, t);
  for (const auto& [name, t] : ckpt.optimizer) put(file, manifest, "optimizer", name, t);
  for (const auto& [name, s] : ckpt.optimizer_slices) put_slice(file, manifest, name, s);
  put_streams(file, manifest, "", {ckpt.rng, ckpt.samplers});
  for (size_t r = 0; r < ckpt.other_ranks.size(); ++r) {
    put_streams(file, manifest, str_cat("/rank", r + 1), ckpt.other_ranks[r]);
  }
  if (main) {
    put(file, manifest, "schedule", "step",
        scalar_tensor(static_cast<double>(ckpt.step), DType::i64));
  }
  for (const auto& [name, t] : ckpt.extra) put(file, manifest, "extra", name, t);
  if (main && ckpt.amp) {
    put(file, manifest, "amp", "scale", scalar_tensor(ckpt.amp->scale, DType::f64));
    put(file, manifest, "amp", "growth_tracker",
        scalar_tensor(static_cast<double>(ckpt.amp->growth_tracker), DType::i64));
    put(file, manifest, "amp", "skipped_steps",
        scalar_tensor(static_cast<double>(ckpt.amp->skipped_steps), DType::i64));
  }
  file.write_attribute("format", kCheckpointFormat);
  file.write_attribute("version", std::to_string(kCheckpointVersion));
  file.write_attribute("step", std::to_string(ckpt.step));
  file.write_attribute("epoch", std::to_string(ckpt.epoch));
  file.write_attribute("checksum", "crc32");
  file.write_attribute("datasets", manifest.dump());
  if (!ckpt.token.empty()) file.write_attribute("token", ckpt.token);
  if (main) {
    file.write_attribute("config", ckpt.config.dump());
    file.write_attribute("layout", ckpt.layout.dump());
    Json parts = Json::array();
    for (const PartRef& p : ckpt.parts) {
      check(p.rank > 0 && !p.file.empty() && p.file.find('/') == std::string::npos,
            "[checkpoint] part ", p.rank, " '", p.file, "': parts are ranks > 0 with a file name");
      parts.push_back(Json{{"rank", p.rank}, {"file", p.file}});
      file.link_external(str_cat("parts/rank", p.rank), p.file);
    }
    file.write_attribute("parts", parts.dump());
  } else {
    file.write_attribute("part_rank", std::to_string(ckpt.part_rank));
  }
  file.flush();
  file.close();
}

Checkpoint read_checkpoint(const std::string& path) {
  std::optional<H5File> file;
  Header h = open_main(path, file);
  Reading rd;
  Checkpoint& ckpt = rd.ckpt;
  ckpt.step = h.info.step;
  ckpt.epoch = h.info.epoch;
  ckpt.config = h.info.config;
  ckpt.layout = h.info.layout;
  ckpt.version = h.info.version;
  ckpt.token = h.token;
  ckpt.parts = h.info.parts;
  read_datasets(rd, *file, false);
  for (const PartRef& ref : h.info.parts) read_datasets(rd, open_part(path, h, ref), true);
  assemble_slices(rd, path);
  ckpt.amp = amp_of(rd, path);
  ckpt.rng = std::move(rd.rank0.rng);
  ckpt.samplers = std::move(rd.rank0.samplers);
  return std::move(rd.ckpt);
}

CheckpointInfo inspect_checkpoint(const std::string& path) {
  std::optional<H5File> file;
  Header h = open_main(path, file);
  CheckpointInfo info = h.info;
  info.entries = entries_of(*file, "");
  for (const PartRef& ref : h.info.parts) {
    for (auto& e : entries_of(open_part(path, h, ref), str_cat("parts/rank", ref.rank, "/"))) {
      info.entries.push_back(std::move(e));
    }
  }
  return info;
}

}  // namespace strata::io
