// Classification (LeNet-5, CIFAR ResNets) and character-LM tasks.
#include "launch/tasks.h"

#include <tuple>

#include "core/nn/embedding.h"
#include "core/ops.h"
#include "core/ops/loss.h"
#include "distributed/pipeline/forward_only.h"
#include "distributed/sync_batch_norm.h"
#include "io/augment.h"
#include "io/datasets.h"
#include "io/image_folder.h"
#include "io/sampler.h"
#include "models/gpt.h"
#include "models/gpt_pipeline.h"
#include "models/lenet.h"
#include "models/resnet.h"

namespace strata::launch {
namespace {

/// The train and test sets of data.path in data.format (idx or image_folder).
std::pair<io::ImageSet, io::ImageSet> load_classify_data(const Json& cfg) {
  std::string format = get<std::string>(cfg, "data.format"),
              path = get<std::string>(cfg, "data.path");
  if (format == "idx") {
    return {io::load_mnist_format(path, "train"), io::load_mnist_format(path, "test")};
  }
  check(format == "image_folder", "[config] data.format: unknown format '", format,
        "'; choose idx (MNIST-style files) or image_folder (<path>/{train,test}/<class>/*.jpg)");
  std::vector<std::string> classes = io::image_folder_classes(path + "/train");
  check(classes == io::image_folder_classes(path + "/test"), "[data] the class folders of ", path,
        "/train and ", path, "/test differ; both splits need the same classes");
  return {io::load_image_folder(path + "/train"), io::load_image_folder(path + "/test")};
}

/// data.mean / data.std: one number (every channel) or a list (one per channel).
std::vector<double> channel_values(const Json& cfg, const std::string& key) {
  const Json& v = cfg["data"][key];
  std::vector<double> out =
      v.is_array() ? v.get<std::vector<double>>() : std::vector<double>{v.get<double>()};
  for (double x : out) {
    check(key != "std" || x > 0, "[config] data.std must be positive, got ", v.dump());
  }
  return out;
}

/// Depth of a CIFAR ResNet name ("resnet20" -> 20); 0 for other models.
int64_t resnet_depth(const std::string& name) {
  return name.rfind("resnet", 0) == 0 ? std::stoll(name.substr(6)) : 0;
}

class ClassifyTask final : public Task {
 public:
  ClassifyTask(const Json& cfg, const Mesh& mesh)
      : batch_(get<int64_t>(cfg, "train.batch_size")),
        eval_batch_(get<int64_t>(cfg, "train.eval_batch_size")),
        eval_samples_(get<int64_t>(cfg, "data.eval_samples")),
        data_(load_classify_data(cfg)),
        sampler_(data_.first.images.size(0), static_cast<uint64_t>(get<int64_t>(cfg, "seed")), true,
                 mesh.dp_rank, mesh.dp),
        init_(static_cast<uint64_t>(get<int64_t>(cfg, "seed"))),
        mesh_(mesh) {
    check(batch_ > 0 && eval_batch_ > 0,
          "[config] train.batch_size and train.eval_batch_size "
          "must be positive");
    check(eval_samples_ >= 0, "[config] data.eval_samples must be >= 0 (0 = the whole test set)");
    eval_tf_.mean = channel_values(cfg, "mean");
    eval_tf_.std = channel_values(cfg, "std");
    eval_tf_.seed = static_cast<uint64_t>(get<int64_t>(cfg, "seed"));
    train_tf_ = eval_tf_;
    train_tf_.augment = get<bool>(cfg, "data.augment");
    build_model(get<std::string>(cfg, "model.name"), get<bool>(cfg, "parallel.sync_bn"));
    model_->to(mesh.device);
  }

  nn::Module& model() override { return *model_; }
  int64_t items_per_step() const override { return batch_; }
  const char* item_unit() const override { return "img"; }
  int64_t steps_per_epoch() const override { return sampler_.shard_size() / batch_; }
  void next_epoch() override { sampler_.next_epoch(); }
  std::vector<std::pair<std::string, Generator*>> generators() override {
    return {{"init", &init_}};
  }
  std::vector<std::pair<std::string, io::Sampler*>> samplers() override {
    return {{"train", &sampler_}};
  }

  Tensor train_loss() override {
    std::vector<int64_t> idx = sampler_.next(batch_);
    if (static_cast<int64_t>(idx.size()) < batch_) {  // partial tail: start the next epoch
      sampler_.next_epoch();
      idx = sampler_.next(batch_);
    }
    // The augmentation is keyed by the epoch and each sample's index, not by the rank.
    // Loaded and augmented on the host; the batch is copied to the model's device.
    auto [x, y] = io::transform_batch(data_.first, idx, train_tf_, sampler_.epoch());
    return cross_entropy(model_->forward(x.to(mesh_.device)), y.to(mesh_.device));
  }

  /// Each data-parallel replica scores every dp-th sample of the evaluation set and the sums
  /// are added over replicas, so the result is that of one process on the whole set.
  Json evaluate() override {
    const io::ImageSet& test = data_.second;
    int64_t n = test.images.size(0);
    int64_t m = eval_samples_ > 0 ? std::min(eval_samples_, n) : n;
    std::vector<int64_t> mine;  // evenly spaced over the test set (it is sorted by class)
    for (int64_t k = mesh_.dp_rank; k < m; k += mesh_.dp) mine.push_back(k * n / m);
    double loss_sum = 0, correct = 0;
    for (size_t start = 0; start < mine.size(); start += static_cast<size_t>(eval_batch_)) {
      std::vector<int64_t> idx(
          mine.begin() + static_cast<std::ptrdiff_t>(start),
          mine.begin() + static_cast<std::ptrdiff_t>(std::min(mine.size(), start + eval_batch_)));
      auto [hx, hy] = io::transform_batch(test, idx, eval_tf_, 0);
      Tensor x = hx.to(mesh_.device), y = hy.to(mesh_.device);
      Tensor logits = model_->forward(x);
      loss_sum += cross_entropy(logits, y, -100, 0.0, Reduction::sum).item();
      correct += sum(eq(argmax(logits, 1), y)).item();
    }
    Tensor sums = empty({2}, DType::f64);
    sums.data<double>()[0] = loss_sum;
    sums.data<double>()[1] = correct;
    mesh_.dp_host->all_reduce(sums, dist::ReduceOp::sum);
    return Json{{"loss", sums.data<double>()[0] / static_cast<double>(m)},
                {"accuracy", sums.data<double>()[1] / static_cast<double>(m)}};
  }

 private:
  /// LeNet-5 or a CIFAR ResNet; with parallel.sync_bn and several replicas, every batch norm
  /// of the ResNet is a SyncBatchNorm over the data-parallel group.
  void build_model(const std::string& name, bool sync_bn) {
    const io::ImageSet& train = data_.first;
    int64_t classes = train.num_classes, channels = train.images.size(1);
    int64_t depth = resnet_depth(name);
    if (depth == 0) {
      model_ = std::make_unique<models::LeNet5>(channels, classes, init_);
      return;
    }
    check(channels == 3, "[config] model ", name, " needs RGB images; the data at data.path has ",
          channels, " channel(s): use data.format=image_folder with colour images (CIFAR-10)");
    models::NormFactory norm;
    if (sync_bn && mesh_.dp > 1) {
      norm = [comm = mesh_.dp_group](int64_t c) -> std::shared_ptr<nn::BatchNorm> {
        return std::make_shared<dist::SyncBatchNorm>(nn::BatchNormOptions{.num_features = c}, comm);
      };
    }
    model_ = std::make_unique<models::CifarResNet>(depth, classes, init_, norm);
  }

  int64_t batch_, eval_batch_, eval_samples_;
  std::pair<io::ImageSet, io::ImageSet> data_;  // train, test
  io::Sampler sampler_;
  Generator init_;  // kept (not a local) so that a checkpoint holds every stream
  Mesh mesh_;
  io::ImageTransform train_tf_, eval_tf_;
  std::unique_ptr<nn::Layer> model_;
};

models::GPTConfig gpt_config(const Json& cfg, int64_t vocab_size) {
  models::GPTConfig g;
  g.vocab_size = vocab_size;
  g.block_size = get<int64_t>(cfg, "model.block_size");
  g.n_layer = get<int64_t>(cfg, "model.n_layer");
  g.n_head = get<int64_t>(cfg, "model.n_head");
  g.n_embd = get<int64_t>(cfg, "model.n_embd");
  g.dropout = get<double>(cfg, "model.dropout");
  g.bias = get<bool>(cfg, "model.bias");
  g.tie_weights = get<bool>(cfg, "model.tie_weights");
  return g;
}

class CharLMTask final : public Task {
 public:
  CharLMTask(const Json& cfg, const Mesh& mesh)
      : batch_(get<int64_t>(cfg, "train.batch_size")),
        eval_batches_(get<int64_t>(cfg, "data.eval_batches")),
        corpus_(io::load_text(get<std::string>(cfg, "data.path"))),
        data_gen_(static_cast<uint64_t>(get<int64_t>(cfg, "seed")) * 2 + 1),
        init_(static_cast<uint64_t>(get<int64_t>(cfg, "seed"))),
        mesh_(mesh) {
    double val = get<double>(cfg, "data.val_fraction");
    check(val > 0 && val < 1, "[config] data.val_fraction must be in (0, 1), got ", val);
    check(batch_ > 0 && eval_batches_ > 0,
          "[config] train.batch_size and data.eval_batches "
          "must be positive");
    int64_t n = corpus_.tokens.numel();
    split_ = n - static_cast<int64_t>(static_cast<double>(n) * val);
    models::GPTConfig g = gpt_config(cfg, corpus_.vocab_size());
    const int64_t head = g.n_embd / std::max<int64_t>(g.n_head, 1);
    check(!mesh.device.is_cuda() || head <= 128,
          "[config] model: head size n_embd / n_head = ", head,
          " exceeds the CUDA attention kernel's 128; raise model.n_head or use device: cpu");
    if (!mesh.pipelined()) {
      model_ = std::make_unique<models::GPT>(g, init_);
    } else {
      int64_t m = mesh.schedule.microbatches;
      check(batch_ % m == 0, "[config] train.batch_size (", batch_,
            ") must be a multiple of parallel.microbatches (", m, ")");
      ranges_ = models::gpt_stage_ranges(g, mesh.virtual_stages(), mesh.balance);
      model_ = std::make_unique<models::GPT>(g, init_,
                                             models::gpt_stage_shard(ranges_, mesh.pp, mesh.stage));
    }
    for (auto& [name, module] : model_->named_modules()) {
      if (auto* drop = dynamic_cast<nn::Dropout*>(module)) {
        drop->generator().set_replica(mesh.dp_rank, mesh.dp);
      }
    }
    model_->to(mesh.device);
  }

  nn::Module& model() override { return *model_; }
  int64_t items_per_step() const override { return batch_ * model_->config().block_size; }
  const char* item_unit() const override { return "tok"; }
  std::vector<std::pair<std::string, Generator*>> generators() override {
    return {{"init", &init_}, {"data", &data_gen_}};
  }
  int64_t steps_per_epoch() const override {
    return std::max<int64_t>(1, split_ / items_per_step());
  }

  Tensor train_loss() override {
    auto [x, y] = next_batch();
    return model_->loss(x, y);
  }

  bool supports_pipeline() const override { return true; }
  void begin_pipeline_step() override { std::tie(x_, y_) = next_batch(); }
  Tensor pipeline_stage(int64_t vs, const Tensor& input, int64_t microbatch) override {
    int64_t rows = batch_ / mesh_.schedule.microbatches, lo = microbatch * rows;
    return models::gpt_virtual_stage(*model_, ranges_, vs, input, x_.slice(0, lo, lo + rows),
                                     y_.slice(0, lo, lo + rows));
  }
  std::vector<Generator*> pipeline_stage_generators(int64_t vs) override {
    std::vector<Generator*> out;
    for (auto& [name, module] : model_->named_modules()) {
      auto* drop = dynamic_cast<nn::Dropout*>(module);
      if (drop == nullptr) continue;
      bool mine = vs == 0 && name == "drop";
      if (name.rfind("h.", 0) == 0) {
        int64_t block = std::stoll(name.substr(2, name.find('.', 2) - 2));
        mine = block >= ranges_[vs].begin && block < ranges_[vs].end;
      }
      if (mine) out.push_back(&drop->generator());
    }
    return out;
  }
  std::vector<std::string> tied_weights() const override {
    if (mesh_.pipelined() && model_->config().tie_weights) return {"wte.weight"};
    return {};
  }

  Json evaluate() override {
    // A fixed generator: every evaluation scores the same validation windows. Each replica
    // scores its rows of the global batch, and the replicas average (equal row counts).
    Generator eval_gen(12345);
    double total = 0;
    for (int64_t i = 0; i < eval_batches_; ++i) {
      auto [x, y] = to_device(
          own_rows(io::text_batch(corpus_.tokens, split_, corpus_.tokens.numel(), batch_ * mesh_.dp,
                                  model_->config().block_size, eval_gen)));
      if (!mesh_.pipelined()) {
        total += model_->loss(x, y).item();
        continue;
      }
      total += dist::pipeline::pipeline_forward(
          *mesh_.pipe, mesh_.schedule.virtual_stages, [&](int64_t vs, const Tensor& input) {
            return models::gpt_virtual_stage(*model_, ranges_, vs, input, x, y);
          });
    }
    Tensor mean = full({1}, total / static_cast<double>(eval_batches_), DType::f64);
    mesh_.dp_host->all_reduce(mean, dist::ReduceOp::avg);
    return Json{{"loss", mean.item()}};
  }

 private:
  /// This replica's rows of the step's global batch. Every rank draws the whole global batch
  /// from one stream, so dp replicas together train on exactly what one process with
  /// batch_size * dp would, and a resume on another dp size continues the same windows.
  std::pair<Tensor, Tensor> next_batch() {
    return to_device(own_rows(io::text_batch(corpus_.tokens, 0, split_, batch_ * mesh_.dp,
                                             model_->config().block_size, data_gen_)));
  }
  /// Batches are drawn on the host and copied to the model's device.
  std::pair<Tensor, Tensor> to_device(std::pair<Tensor, Tensor> batch) const {
    return {batch.first.to(mesh_.device), batch.second.to(mesh_.device)};
  }
  /// The global batch is dp x m blocks of batch_ / m rows (m micro-batches per replica, 1
  /// unpipelined), and micro-batch k of replica r is block k * dp + r: the order in which the
  /// replicas' dropout generators (set_replica) draw, so that their masks are the rows of the
  /// one mask a single process draws for the global batch.
  std::pair<Tensor, Tensor> own_rows(std::pair<Tensor, Tensor> batch) const {
    if (mesh_.dp == 1) return batch;
    int64_t m = mesh_.pipelined() ? mesh_.schedule.microbatches : 1, rows = batch_ / m;
    std::vector<Tensor> xs, ys;
    for (int64_t k = 0; k < m; ++k) {
      int64_t lo = (k * mesh_.dp + mesh_.dp_rank) * rows;
      xs.push_back(batch.first.slice(0, lo, lo + rows));
      ys.push_back(batch.second.slice(0, lo, lo + rows));
    }
    return {concat(xs, 0), concat(ys, 0)};
  }

  int64_t batch_, eval_batches_;
  io::TextCorpus corpus_;
  Generator data_gen_;
  Generator init_;  // kept (not a local) so that a checkpoint holds every stream
  Mesh mesh_;
  int64_t split_ = 0;
  std::vector<dist::pipeline::StageRange> ranges_;  // blocks per virtual stage (pipelined)
  Tensor x_, y_;                                    // the step's batch (pipelined)
  std::unique_ptr<models::GPT> model_;
};

}  // namespace

void Task::begin_pipeline_step() {
  throw Error(
      "[config] parallel.pp > 1: this task's model cannot be split into pipeline stages; "
      "use task char_lm (a GPT) or set parallel.pp=1");
}

Tensor Task::pipeline_stage(int64_t, const Tensor&, int64_t) {
  begin_pipeline_step();  // throws the same explanation
  return {};
}

void Task::load_extra_state(const std::map<std::string, Tensor>& state) {
  check(state.empty(), "[resume] the checkpoint holds extra state '", state.begin()->first,
        "' that this task does not use; was it written by another task?");
}

std::unique_ptr<Task> make_classify_task(const Json& cfg, const Mesh& mesh) {
  return std::make_unique<ClassifyTask>(cfg, mesh);
}

std::unique_ptr<Task> make_char_lm_task(const Json& cfg, const Mesh& mesh) {
  return std::make_unique<CharLMTask>(cfg, mesh);
}

}  // namespace strata::launch
