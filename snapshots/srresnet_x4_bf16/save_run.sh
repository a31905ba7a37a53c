#!/usr/bin/env bash
# Keeps the run of continue.sh in git for the next machine: its newest checkpoint (networks, Adam's moments, the
# weights' average, the step), history and settings go to run_2/ (about 25 MB of weights and moments, added to
# git's history each time it is committed); its TensorBoard files and older checkpoints do not. The run must be
# stopped first (kill -TERM saves the step it stops at).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/srresnet_x4_bf16_2 SAVED=snapshots/srresnet_x4_bf16/run_2
flock -n "$RUN/.lock" true || { echo "$RUN is in use: stop its training first" >&2; exit 1; }
index=$(ls "$RUN"/mse/checkpoints/ckpt-*.index 2>/dev/null | sort -V | tail -n 1)
[ -n "$index" ] || { echo "$RUN has no checkpoint" >&2; exit 1; }
newest=$(basename "$index" .index)
rm -rf "$SAVED.tmp" && mkdir -p "$SAVED.tmp/mse/checkpoints"
cp "$RUN/history.jsonl" "$SAVED.tmp/"
cp "$RUN"/mse/*.json "$SAVED.tmp/mse/"
rm -f "$SAVED.tmp"/mse/generator.json  # the card of the exported generator, which is not kept
cp "$RUN/mse/checkpoints/$newest".* "$SAVED.tmp/mse/checkpoints/"
printf 'model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' "$newest" "$newest" \
    > "$SAVED.tmp/mse/checkpoints/checkpoint"
rm -rf "$SAVED" && mv "$SAVED.tmp" "$SAVED"
echo "kept $newest of $RUN in $SAVED"
