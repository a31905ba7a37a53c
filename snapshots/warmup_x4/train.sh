#!/usr/bin/env bash
# The learning-rate warm-up measured: the srresnet-x4 shipped then (snapshots/srresnet_x4_bf16) trained on for 500
# steps at 1e-4 (EMA 0.999, as srresnet_x4_bf16/continue.sh) with --warmup-steps 500, then on to step 1500 (its
# generator there, generator.weights.h5 here, ships now as srresnet-x4), then to step 2250, where it had fallen back. Set5 validation (validation.jsonl):
# 31.58 at steps 250 and 500, 31.60 at 1250-1500 (the model shipped then: 31.58; rerun with --steps 2250 for the rest); at step 500 colour shift 0.14 grey
# levels (benchmark_set5_step500.json, from `python -m srlib benchmark --weights runs/warmup_500/generator.weights.h5 --data ../shared/data --sets Set5 --out ...`). The same run without the
# warm-up: 30.80 at step 500, 31.46 at 1500 (srresnet_x4_bf16/validation_2.jsonl): Adam's first updates shifted
# its colours.
# Run on an AVX2-only AMD EPYC, so in float32 (the fallback from bfloat16), with --xla passed to this script.
cd "$(dirname "$0")/../.." || exit 1
exec snapshots/srresnet_x4_bf16/continue.sh --run-dir runs/warmup_500 --steps 1500 \
    --validate-every 250 --checkpoint-every 250 "$@"
