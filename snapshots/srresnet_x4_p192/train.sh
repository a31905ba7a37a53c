#!/usr/bin/env bash
# The shipped srresnet-x4 (25851 steps on 96-pixel patches) fine-tuned on 192-pixel HR patches (48 LR pixels, as
# EDSR trains; the 51 of the 291 images smaller than that are skipped) in bfloat16 (issue 22): 1441 steps at 5e-5,
# then at 1e-5 (LR=1e-5, the default here). Resumes when rerun. Stopped at step 2308: no better than where it
# started (benchmark_2308.json; Set5 validation in validation.jsonl fell from 31.59 to 31.56), so nothing shipped.
cd "$(dirname "$0")/../.." || exit 1
exec nice -n 19 .venv/bin/python -m srlib train --recipe paper --stage mse --data ../shared/data/train \
    --steps 20000 --run-dir runs/srresnet_x4_p192 --no-batch-norm --init-generator "${INIT:-srresnet-x4}" \
    --patch-size 192 --checkpoint-every 100 --validate-every 250 --learning-rate "${LR:-1e-5}" --ema 0.999 \
    --precision bfloat16 "$@"
