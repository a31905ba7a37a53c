#!/usr/bin/env bash
# SRResNet-16 trained on from the shipped srresnet-x4 in bfloat16 (issue 22). Resumes when rerun.
cd "$(dirname "$0")/../.." || exit 1
exec nice -n 10 .venv/bin/python -m srlib train --recipe paper --stage mse --data ../shared/data/train \
    --steps 60000 --run-dir runs/srresnet_x4_bf16 --no-batch-norm --init-generator srresnet-x4 \
    --checkpoint-every 250 --validate-every 500 --learning-rate 1e-4 --ema 0.999 --precision bfloat16 "$@"
