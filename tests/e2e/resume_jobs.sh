# Sourced by the resume tests: job_args JOB SRC sets the array `args` to the small LeNet or
# char-GPT run (dropout on, so random state matters) that the tests stop and resume.
job_args() {
  local job=$1 src=$2
  case $job in
    lenet|lenet_async)
      args=(--config "$src/configs/lenet5_fashion_mnist.json" --set train.batch_size=32
            --set schedule.warmup_steps=4)
      if [ "$job" = lenet_async ]; then args+=(--set checkpoint.async=true); fi ;;
    gpt)
      args=(--config "$src/configs/char_gpt_fortunes.json"
            --set data.path="$src/../shared/data/tinyshakespeare.txt" --set model.n_layer=2
            --set model.n_embd=64 --set model.n_head=4 --set model.block_size=32
            --set model.dropout=0.2 --set train.batch_size=8 --set data.eval_batches=2
            --set schedule.warmup_steps=4) ;;
    gpt_fp16)
      # fp16 with a scale that grows every 3 clean steps: resumes must carry the scaler.
      job_args gpt "$src"
      args+=(--set train.amp=fp16 --set train.loss_scale.growth_interval=3) ;;
    *) echo "unknown job $job"; return 1 ;;
  esac
}
