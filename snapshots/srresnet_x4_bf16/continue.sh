#!/usr/bin/env bash
# The shipped srresnet-x4 (25851 steps of srresnet_bf16.sh) trained on at 1e-4 (issue 22). Resumes when rerun.
# A new machine has no runs/: the run then starts from this folder's run_2/ (the newest checkpoint that
# save_run.sh kept, with the optimizer's moments, so Adam does not start cold), or, without it, from the shipped
# generator (--init-generator). On a CPU without bfloat16 hardware the step computes in float32, where XLA
# was 1.5x as fast (figures/bench_train_xla_avx2.md), so XLA is then on.
cd "$(dirname "$0")/../.." || exit 1
RUN=runs/srresnet_x4_bf16_2 SAVED=snapshots/srresnet_x4_bf16/run_2
if [ ! -d "$RUN" ] && [ -d "$SAVED" ]; then
    mkdir -p runs && cp -r "$SAVED" "$RUN" && echo "resuming from the checkpoint in $SAVED" >&2
fi
grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo || XLA=--xla
exec nice -n 19 .venv/bin/python -m srlib train --recipe paper --stage mse --data ../shared/data/train \
    --steps 60000 --run-dir "$RUN" --no-batch-norm --init-generator "${INIT:-srresnet-x4}" \
    --checkpoint-every 250 --validate-every 500 --learning-rate "${LR:-1e-4}" --ema 0.999 --precision bfloat16 \
    ${XLA:-} "$@"
