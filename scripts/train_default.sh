#!/usr/bin/env bash
# The shipped model's full recipe on a 2-core machine, two TensorFlow processes at a time:
#   scripts/train_default.sh DATA_DIR [RUNS_DIR]
# DATA_DIR holds ravdess/ emodb/ nemo/ ased/ in their original layouts (../shared/data here).
# Each step writes its own folder under RUNS_DIR (default runs/) and logs there; a step
# whose output exists is skipped, so the script resumes after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
D="${1:?usage: scripts/train_default.sh DATA_DIR [RUNS_DIR]}"
R="${2:-runs}"
PY=.venv/bin/python
CORPORA=(--corpus "ravdess=$D/ravdess" --corpus "emodb=$D/emodb" --corpus "nemo=$D/nemo" --corpus "ased=$D/ased")
# the shipped recipe: three networks (the default), RAVDESS drawn twice as often
RECIPE=(--set corpus_weights=ravdess=2)
mkdir -p "$R/eval" "$R/default"
export SER_TF_THREADS=1 SER_DATA_WORKERS=1
echo "$(date -Is) start: $0 $*" >> "$R/RUNS.log"
# 1. decoded, cropped, augmented and degraded features of every clip (shared by all steps)
[ -f "$R/cache.done" ] || { SER_DATA_WORKERS=2 $PY -m training.data "${CORPORA[@]}" --views all \
  > "$R/cache.log" 2>&1 && touch "$R/cache.done"; }
# 2. two lanes of about equal length: three speaker folds | the model to ship, the other two
#    folds, leave-one-corpus-out twice
fold() { [ -f "$R/eval/fold_$1.json" ] || $PY -m training.evaluate "${CORPORA[@]}" "${RECIPE[@]}" --folds 5 \
  --run-folds "$1" --out "$R/eval" > "$R/eval/fold_$1.log" 2>&1; }
loco() { [ -f "$R/eval/loco_$1.json" ] || $PY -m training.evaluate "${CORPORA[@]}" "${RECIPE[@]}" --folds 5 \
  --run-folds '' --leave-out "$1" --out "$R/eval" > "$R/eval/loco_$1.log" 2>&1; }
( fold 0; fold 1; fold 2 ) &
lane1=$!
(
  # the model to ship: its three networks share their validation speakers, so that 2 per
  # corpus stay unseen by the whole model (temperature, `uncertain` threshold, int8 check)
  [ -f "$R/default/model.keras" ] || $PY -m training.train "${CORPORA[@]}" "${RECIPE[@]}" \
    --set rotate_validation=false --out "$R/default" > "$R/default.log" 2>&1
  fold 3; fold 4; loco emodb; loco ased
) &
lane2=$!
wait $lane1 $lane2
$PY -m training.evaluate "${CORPORA[@]}" "${RECIPE[@]}" --folds 5 --run-folds '' --out "$R/eval" \
  > "$R/eval/merge.log" 2>&1
echo "$(date -Is) done" >> "$R/RUNS.log"
