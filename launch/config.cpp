// Config defaults, merging and validation.
#include "launch/config.h"

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "launch/device.h"

namespace strata::launch {
namespace {

Json common_defaults() {
  return Json{
      {"task", "classify"},
      {"run_dir", "runs/default"},
      // cpu, cuda (the GPU of this rank's local rank) or cuda:N (launch/device.h).
      {"device", "cpu"},
      {"seed", 0},
      {"threads", 0},
      {"train",
       {{"epochs", 10},
        {"max_steps", 0},
        {"batch_size", 64},
        {"eval_batch_size", 1000},
        {"log_every", 100},
        {"eval_every", 0},
        {"grad_clip", 0.0},
        // Stop (after checkpointing) once this step is done, as a preempted job would; 0 = off.
        {"stop_at_step", 0},
        // Mixed precision: none, bf16 (autocast) or fp16 (autocast plus dynamic loss scaling
        // from loss_scale.init, doubled after growth_interval steps without inf/NaN).
        {"amp", "none"},
        // tf32: f32 GEMMs on CUDA may use TF32 tensor cores (as torch's allow_tf32).
        {"tf32", false},
        {"loss_scale", {{"init", 65536.0}, {"growth_interval", 2000}}}}},
      // dir "" means <run_dir>/checkpoints (filled in by resolve_config); every 0 = no saves;
      // async writes in a background thread while training goes on.
      {"checkpoint", {{"dir", ""}, {"every", 1000}, {"keep", 3}, {"async", false}}},
      // zero: ZeRO-1 (optimizer state sharded over the data-parallel ranks) instead of
      // DataParallel plus a replicated optimizer. pp: pipeline stages (dp = world size / pp),
      // each step's batch split into `microbatches`, run by `schedule` (gpipe, 1f1b,
      // interleaved with `virtual_stages` model chunks per stage); balance: blocks per virtual
      // stage ([] = automatic, by parameter count); recompute: activation recomputation in
      // each stage (one more forward per micro-batch, a fraction of the activation memory).
      {"parallel",
       {{"zero", false},
        {"pp", 1},
        {"microbatches", 1},
        {"schedule", "1f1b"},
        {"virtual_stages", 1},
        {"balance", Json::array()},
        {"recompute", false},
        // sync_bn: BatchNorm statistics over the global batch of every data-parallel rank
        // (SyncBatchNorm); off, each rank normalises by its own batch and the running
        // statistics are broadcast from rank 0 before each evaluation and checkpoint.
        {"sync_bn", false}}},
      // per_rank: every rank also writes <run_dir>/rank<N>.log with its own progress lines.
      {"log", {{"per_rank", false}}},
      // path "" = off; else each rank writes its Chrome trace to <path>.rank<N>.json.
      {"trace", {{"path", ""}}},
      {"optim",
       {{"name", "adam"},
        {"lr", 1e-3},
        {"weight_decay", 0.0},
        {"momentum", 0.9},
        {"nesterov", false},
        {"betas", {0.9, 0.999}},
        {"eps", 1e-8}}},
      {"schedule",
       {{"name", "constant"},
        {"warmup_steps", 0},
        {"warmup_start_factor", 0.01},
        {"min_lr", 0.0},
        {"step_size", 1000},
        {"milestones", Json::array()},
        {"gamma", 0.1},
        {"power", 1.0},
        {"max_lr", 0.01},
        {"step_size_up", 2000},
        {"mode", "triangular"}}},
  };
}

Json model_defaults(const std::string& model) {
  if (model == "lenet5") return Json{{"name", "lenet5"}, {"activation", "relu"}};
  if (model == "gpt") {
    return Json{{"name", "gpt"},    {"n_layer", 4},   {"n_head", 4},  {"n_embd", 128},
                {"block_size", 64}, {"dropout", 0.0}, {"bias", true}, {"tie_weights", true}};
  }
  // CIFAR ResNets (He et al. 2016): depth 6n+2.
  for (const char* name : {"resnet20", "resnet32", "resnet44", "resnet56"}) {
    if (model == name) return Json{{"name", model}};
  }
  throw Error(str_cat("[config] model.name: unknown model '", model,
                      "'; choose lenet5, resnet20, resnet32, resnet44, resnet56 or gpt"));
}

/// Whether `model` is a CIFAR ResNet (its data defaults are CIFAR-10's).
bool is_resnet(const std::string& model) { return model.rfind("resnet", 0) == 0; }

// format: "idx" (MNIST-style files in path) or "image_folder" (path/{train,test}/<class>/
// *.jpg); augment: random crop (zero padding 4) and horizontal flip of training images;
// mean/std: one value for every channel or one per channel (ResNets: per channel);
// eval_samples: evaluate on this many test images, evenly spaced (0 = all).
Json data_defaults(const std::string& task, const std::string& model) {
  if (task == "classify" && is_resnet(model)) {
    return Json{{"name", "cifar10"},
                {"format", "image_folder"},
                {"path", "data/cifar10"},
                {"mean", {0.4914, 0.4822, 0.4465}},
                {"std", {0.2470, 0.2435, 0.2616}},
                {"augment", true},
                {"eval_samples", 0}};
  }
  if (task == "classify") {
    return Json{
        {"name", "fashion_mnist"}, {"format", "idx"}, {"path", "/usr/share/datasets/fashion-mnist"},
        {"mean", 0.2860},          {"std", 0.3530},   {"augment", false},
        {"eval_samples", 0}};
  }
  if (task == "char_lm") {
    return Json{{"name", "text"},
                {"path", "/usr/share/games/fortunes"},
                {"val_fraction", 0.1},
                {"eval_batches", 20}};
  }
  throw Error(str_cat("[config] task: unknown task '", task, "'; choose classify or char_lm"));
}

std::string type_name(const Json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return "null";
}

bool same_kind(const Json& def, const Json& v) {
  if (def.is_number_float()) return v.is_number() && !v.is_boolean();
  if (def.is_number_integer()) return v.is_number_integer() && !v.is_boolean();
  if (def.is_boolean()) return v.is_boolean();
  if (def.is_string()) return v.is_string();
  if (def.is_array()) return v.is_array() && (def.empty() || v.size() == def.size());
  if (def.is_object()) return v.is_object();
  return false;
}

std::string known_keys(const Json& obj) {
  std::string s;
  for (auto it = obj.begin(); it != obj.end(); ++it) s += (s.empty() ? "" : ", ") + it.key();
  return s;
}

/// Overlays `user` onto `base` (the defaults), checking keys and types.
void overlay(Json& base, const Json& user, const std::string& prefix) {
  for (auto it = user.begin(); it != user.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    check(base.contains(it.key()), "[config] unknown key '", key, "'; known keys",
          prefix.empty() ? "" : " in '" + prefix + "'", ": ", known_keys(base));
    Json& def = base[it.key()];
    check(same_kind(def, it.value()), "[config] ", key, " must be ", type_name(def),
          def.is_array() && !def.empty() ? str_cat(" of ", def.size(), " items") : "", ", got ",
          it.value().dump());
    if (def.is_object()) {
      overlay(def, it.value(), key);
    } else {
      def = def.is_number_float() ? Json(it.value().get<double>()) : it.value();
    }
  }
}

/// Turns "a.b=v" into {"a": {"b": v}}.
Json parse_override(const std::string& text) {
  auto eq = text.find('=');
  check(eq != std::string::npos && eq > 0, "[config] --set expects key=value, got '", text, "'");
  std::string key = text.substr(0, eq), raw = text.substr(eq + 1);
  Json value = Json::parse(raw, nullptr, false);
  if (value.is_discarded()) value = raw;
  Json root = Json::object();
  Json* node = &root;
  size_t start = 0;
  for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
    node = &(*node)[key.substr(start, dot - start)];
    start = dot + 1;
  }
  (*node)[key.substr(start)] = value;
  return root;
}

void merge_into(Json& dst, const Json& src) {
  for (auto it = src.begin(); it != src.end(); ++it) {
    if (it.value().is_object() && dst.contains(it.key()) && dst[it.key()].is_object()) {
      merge_into(dst[it.key()], it.value());
    } else {
      dst[it.key()] = it.value();
    }
  }
}

}  // namespace

Json default_config(const std::string& task, const std::string& model) {
  Json cfg = common_defaults();
  cfg["task"] = task;
  cfg["data"] = data_defaults(task, model);
  cfg["model"] = model_defaults(model);
  return cfg;
}

namespace {

/// train.amp and train.loss_scale: a known mode and a usable scaler.
void check_amp(const Json& cfg) {
  std::string amp = get<std::string>(cfg, "train.amp");
  check(amp == "none" || amp == "bf16" || amp == "fp16", "[config] train.amp: unknown value '", amp,
        "'; choose none, bf16 or fp16");
  double init = get<double>(cfg, "train.loss_scale.init");
  check(std::isfinite(init) && init > 0, "[config] train.loss_scale.init must be positive, got ",
        init);
  int64_t interval = get<int64_t>(cfg, "train.loss_scale.growth_interval");
  check(interval > 0, "[config] train.loss_scale.growth_interval must be positive, got ", interval);
}

}  // namespace

Json resolve_config_json(const Json& user_in, const std::vector<std::string>& overrides) {
  check(user_in.is_object(), "[config] the configuration must be a JSON object");
  Json user = user_in;
  for (const auto& o : overrides) merge_into(user, parse_override(o));
  std::string task = user.value("task", std::string("classify"));
  std::string fallback_model = task == "char_lm" ? "gpt" : "lenet5";
  std::string model = fallback_model;
  if (user.contains("model") && user["model"].is_object() && user["model"].contains("name")) {
    check(user["model"]["name"].is_string(), "[config] model.name must be a string");
    model = user["model"]["name"].get<std::string>();
  }
  check(user.value("task", Json("classify")).is_string(), "[config] task must be a string");
  Json cfg = default_config(task, model);
  overlay(cfg, user, "");
  if (cfg["checkpoint"]["dir"].get<std::string>().empty()) {
    cfg["checkpoint"]["dir"] = cfg["run_dir"].get<std::string>() + "/checkpoints";
  }
  check(cfg["checkpoint"]["every"].get<int64_t>() >= 0, "[config] checkpoint.every must be >= 0 ",
        "(0 turns saving off), got ", cfg["checkpoint"]["every"].get<int64_t>());
  check(cfg["checkpoint"]["keep"].get<int64_t>() >= 1,
        "[config] checkpoint.keep must be >= 1, got ", cfg["checkpoint"]["keep"].get<int64_t>());
  check_amp(cfg);
  configured_device(cfg);
  return cfg;
}

Json resolve_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  check(in.good(), "[config] cannot read config file '", path, "'");
  Json user = Json::parse(in, nullptr, false);
  check(!user.is_discarded(), "[config] ", path, " is not valid JSON; check commas and quotes");
  return resolve_config_json(user, overrides);
}

template <class T>
T get(const Json& cfg, const std::string& dotted) {
  const Json* node = &cfg;
  size_t start = 0;
  while (true) {
    size_t dot = dotted.find('.', start);
    std::string part = dotted.substr(start, dot == std::string::npos ? dot : dot - start);
    check(node->is_object() && node->contains(part), "[config] missing key '", dotted, "'");
    node = &(*node)[part];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  try {
    return node->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(str_cat("[config] ", dotted, " has the wrong type: ", node->dump()));
  }
}

template double get<double>(const Json&, const std::string&);
template int64_t get<int64_t>(const Json&, const std::string&);
template bool get<bool>(const Json&, const std::string&);
template std::string get<std::string>(const Json&, const std::string&);

}  // namespace strata::launch
