#!/usr/bin/env bash
# Reproduce the paper's CIFAR experiments on one GPU, in priority order:
#   1. throughput (Conv6 dense vs masked, on-device vs DataLoader pipeline)
#   2. the paper's CIFAR-10 cells (Conv2, Conv6, then Conv4), one seed, then more seeds
#   3. the CIFAR-100 table
# Resumable: re-run the same command and finished runs are skipped (interrupted runs resume
# from their checkpoints). Run from the repository root with the data prepared:
#   GUMBEL_LITE_DATA=/path/to/cache scripts/reproduce_gpu.sh
# Settings (environment): RESULTS (data/results), EPOCHS (100, cosine schedule), JOBS (runs at
# once on the GPU: 4, or fewer where the machine has fewer CPU cores to feed them; a Colab VM
# has 2), SEEDS (0,1,2), SMOKE (1 = seconds-long rehearsal, results flagged smoke).
set -euo pipefail
RESULTS=${RESULTS:-data/results}
EPOCHS=${EPOCHS:-100}
CORES=$(nproc 2>/dev/null || echo 1)
JOBS=${JOBS:-$((CORES < 4 ? CORES : 4))}
SEEDS=${SEEDS:-0,1,2}
PY=${PYTHON:-python3}
SMOKE_FLAG=()
[ "${SMOKE:-0}" = 1 ] && SMOKE_FLAG=(--smoke)
# bf16 autocast and channels_last are "auto": on for CUDA, recorded with every run
FAST=(--epochs "$EPOCHS" --schedule cosine --jobs "$JOBS" --no-progress)
mkdir -p "$RESULTS"

"$PY" scripts/throughput.py --out "$RESULTS/throughput.jsonl" "${SMOKE_FLAG[@]}"
# one seed of every cell first, then the other seeds
"$PY" -m gumbel_lite grid paper-cifar10 --seeds 0 "${FAST[@]}" --out "$RESULTS/paper-cifar10.jsonl" "${SMOKE_FLAG[@]}"
"$PY" -m gumbel_lite grid paper-cifar100 --seeds 0 "${FAST[@]}" --out "$RESULTS/paper-cifar100.jsonl" "${SMOKE_FLAG[@]}"
"$PY" -m gumbel_lite grid paper-cifar10 --seeds "$SEEDS" "${FAST[@]}" --out "$RESULTS/paper-cifar10.jsonl" "${SMOKE_FLAG[@]}"
"$PY" -m gumbel_lite grid paper-cifar100 --seeds "$SEEDS" "${FAST[@]}" --out "$RESULTS/paper-cifar100.jsonl" "${SMOKE_FLAG[@]}"
