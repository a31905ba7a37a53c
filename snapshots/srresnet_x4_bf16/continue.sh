#!/usr/bin/env bash
# The srresnet-x4 shipped then (25851 steps of srresnet_bf16.sh; this folder's generator.weights.h5, and its card
# shipped_card.json) trained on at 1e-4 (issue 22); its continuation to step 1500 (snapshots/warmup_x4) ships now.
# Resumes when rerun; flags given to this script come last and override its own (e.g. --learning-rate 1e-5). It
# starts from that generator (--init-generator) with a new optimizer, warmed up over 500 steps: without a warm-up, at 1e-4 Adam's
# first updates shifted the colours for about 2000 steps (validation_2.jsonl, the run to step 4233, in
# runs/srresnet_x4_bf16_2: it resumes with --run-dir runs/srresnet_x4_bf16_2 --warmup-steps 0, as a stage keeps the
# warm-up it started with); with --warmup-steps 500 Set5 stayed at 31.58 (snapshots/warmup_x4). On a CPU without
# bfloat16 hardware the step computes in float32; where XLA is faster for it (the AVX2-only EPYC of
# figures/bench_train_xla_avx2.md), pass --xla.
cd "$(dirname "$0")/../.." || exit 1
exec nice -n 19 .venv/bin/python -m srlib train --recipe paper --stage mse --data ../shared/data/train \
    --steps 60000 --run-dir runs/srresnet_x4_bf16_warm --no-batch-norm --init-generator snapshots/srresnet_x4_bf16/generator.weights.h5 \
    --checkpoint-every 250 --validate-every 500 --learning-rate 1e-4 --ema 0.999 --warmup-steps 500 \
    --precision bfloat16 "$@"
