#!/usr/bin/env bash
# The checks a GPU machine gets the day one is available, in one script (a few minutes on a GPU):
#   1. doctor: the device, its precision and why, versions, data, speed          -> doctor.json
#   2. Conv2 on full CIFAR-10, killed (SIGKILL) after its first checkpoint, then
#      resumed by the same command to its last epoch                             -> resume.jsonl
#   3. bf16 + channels_last vs float32: the precision-check grid (3 epochs, 3 seeds) -> precision-check.jsonl
#   4. Conv6 training speed in float32, bf16 and bf16 + channels_last              -> conv6-speed.json
# Usage: scripts/device_check.sh [--device cuda] [--out DIR (default data/results/device-check)] [--smoke]
# --smoke shrinks every step to seconds (a CIFAR-10 subset, results flagged smoke): CI rehearses
# the script that way on the CPU (--device cpu --smoke), so it cannot rot before a GPU runs it.
# The data must be prepared ($GUMBEL_LITE_DATA, or --data-root's default).
set -euo pipefail
DEVICE=cuda
OUT=
SMOKE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --smoke) SMOKE=1; shift ;;
        *) echo "device_check.sh: unknown argument $1 (valid: --device DEVICE, --out DIR, --smoke)" >&2; exit 2 ;;
    esac
done
PY=${PYTHON:-python3}
if [ -z "$OUT" ]; then  # a rehearsal's results never land in data/results
    if [ "$SMOKE" = 1 ]; then OUT=$(mktemp -d); else OUT=data/results/device-check; fi
fi
mkdir -p "$OUT"
say() { echo "[device-check] $*"; }

say "1. doctor"
"$PY" -m gumbel_lite doctor --device "$DEVICE" --json > "$OUT/doctor.json"
cat "$OUT/doctor.json"

say "2. kill after the first checkpoint, then resume"
if [ "$SMOKE" = 1 ]; then
    SIZE=(--per-class 100 --test-per-class 20 --epochs 4 --batch-size 32)
else
    SIZE=(--epochs 5)
fi
CKPT="$OUT/resume.checkpoints"
rm -rf "$CKPT" "$OUT/resume.jsonl"
TRAIN=("$PY" -m gumbel_lite train --network conv2 --mask-lr 300 --device "$DEVICE" "${SIZE[@]}"
       --out "$OUT/resume.jsonl" --checkpoint-dir "$CKPT" --no-progress)
"${TRAIN[@]}" &
PID=$!
for _ in $(seq 1 6000); do  # up to 10 minutes for the first epoch
    compgen -G "$CKPT/*.pt" > /dev/null && break
    kill -0 "$PID" 2> /dev/null || break
    sleep 0.1
done
kill -9 "$PID" 2> /dev/null || true
wait "$PID" 2> /dev/null || true
compgen -G "$CKPT/*.pt" > /dev/null || { say "FAIL: no checkpoint was written"; exit 1; }
[ ! -s "$OUT/resume.jsonl" ] || { say "FAIL: the run finished before the kill: nothing was resumed"; exit 1; }
"${TRAIN[@]}"
"$PY" - "$OUT/resume.jsonl" "$CKPT" <<'PYEOF'
import json, sys
from pathlib import Path
(record,) = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines() if line.strip()]
m = record["metrics"]
assert record["status"] == "ok" and m["epochs_run"] == record["config"]["epochs"], record["status"]
assert not list(Path(sys.argv[2]).glob("*.pt")), "the finished run left its checkpoint"
print(f"resumed and finished: {m['epochs_run']} epochs, test {m['test_accuracy']:.4f}, precision {record['precision']}")
PYEOF

say "3. bf16 + channels_last vs float32"
SMOKE_FLAG=()
[ "$SMOKE" = 1 ] && SMOKE_FLAG=(--smoke)
"$PY" -m gumbel_lite grid precision-check --device "$DEVICE" --jobs 1 --no-progress --out "$OUT/precision-check.jsonl" "${SMOKE_FLAG[@]}"

say "4. Conv6 training speed by precision"
"$PY" - "$DEVICE" "$SMOKE" "$OUT/conv6-speed.json" <<'PYEOF'
import json, sys
import torch
from gumbel_lite.doctor import training_speed
from gumbel_lite.runner import provenance
device, smoke, out = torch.device(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
steps, batch = (1, 8) if smoke else (50, 256)
speeds = {
    name: training_speed(device, bf16, channels_last, steps=steps, batch_size=batch)
    for name, bf16, channels_last in (("fp32", False, False), ("bf16", True, False), ("bf16_channels_last", True, True))
}
record = {"images_per_s": speeds, "steps": steps, "batch_size": batch, "smoke": smoke, **provenance(device)}
with open(out, "w") as f:
    json.dump(record, f, indent=1, sort_keys=True)
print(", ".join(f"{k} {v:,.0f} images/s" for k, v in speeds.items()))
PYEOF
say "all checks passed; results in $OUT"
