#!/usr/bin/env bash
# Keeps the run of continue.sh in git for the next machine: its newest checkpoint (networks, Adam's moments, the
# weights' average, the step), history and settings go to run_2/; its TensorBoard files and older checkpoints
# do not. Stop the run first (kill -TERM saves the step it stops at).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/srresnet_x4_bf16_2 SAVED=snapshots/srresnet_x4_bf16/run_2
newest=$(sed -n 's/^model_checkpoint_path: "\(.*\)"$/\1/p' "$RUN/mse/checkpoints/checkpoint")
rm -rf "$SAVED.tmp" && mkdir -p "$SAVED.tmp/mse/checkpoints"
cp "$RUN/history.jsonl" "$SAVED.tmp/"
cp "$RUN"/mse/{config,initialised_from,provenance}.json "$SAVED.tmp/mse/"
cp "$RUN/mse/checkpoints/$newest".* "$SAVED.tmp/mse/checkpoints/"
printf 'model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' "$newest" "$newest" \
    > "$SAVED.tmp/mse/checkpoints/checkpoint"
rm -rf "$SAVED" && mv "$SAVED.tmp" "$SAVED"
echo "kept $newest of $RUN in $SAVED"
