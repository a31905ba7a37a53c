#!/usr/bin/env bash
# srresnet-real-x4 (issue 24): the srresnet-x4 shipped then (snapshots/srresnet_x4_bf16) fine-tuned with the pixel loss on the mixed degradation
# (Real-ESRGAN's chain 60%, clean bicubic 20%, bicubic + JPEG 20%), in bfloat16. Resumes when rerun. The shipped
# model: 1e-4 up to step 14259, then resumed with `bash snapshots/srresnet_real_x4/train.sh --learning-rate 3e-5`.
cd "$(dirname "$0")/../.." || exit 1
exec nice -n 10 .venv/bin/python -m srlib train --recipe paper --stage mse --data ../shared/data/train \
    --steps 40000 --run-dir runs/srresnet_real_x4 --no-batch-norm --init-generator snapshots/srresnet_x4_bf16/generator.weights.h5 \
    --checkpoint-every 250 --validate-every 500 --learning-rate 1e-4 --ema 0.999 --precision bfloat16 \
    --degradation mixed "$@"
