#!/usr/bin/env bash
# The shipped srresnet-x4 (25851 steps of srresnet_bf16.sh) trained on in bfloat16 (issue 22). Resumes when rerun;
# a new session without runs/ starts it again from this folder's generator with --init-generator.
cd "$(dirname "$0")/../.." || exit 1
exec nice -n 19 .venv/bin/python -m srlib train --recipe paper --stage mse --data ../shared/data/train \
    --steps 60000 --run-dir runs/srresnet_x4_bf16_2 --no-batch-norm --init-generator "${INIT:-srresnet-x4}" \
    --checkpoint-every 250 --validate-every 500 --learning-rate 1e-4 --ema 0.999 --precision bfloat16 "$@"
