#!/usr/bin/env bash
# Run one experiment end to end and print its results table:
#   scripts/evaluate_experiment.sh exp001_baseline_ddsp   # pure resynthesis (composition synth), as the original
#   scripts/evaluate_experiment.sh exp002_residual_model  # the residual compositions gate and mask
# Extra arguments are config overrides for training (e.g. training.max_steps=300).
#
# Data (shared by the experiments, every step skips finished work): the synthetic corpus of configs/demo.yaml
# (train / validation / test songs) and real remixes built from ../shared/data (SHARED_DATA): real vocals over the
# MUSDB sample's accompaniment at -3 dB, all held out for testing. Separator: SEPARATOR (default auto = htdemucs when
# its weights load, else the weight-free fallback). Models train on the synthetic training songs only and are
# evaluated on the synthetic test songs and on the real remixes. Outputs: runs/experiments/data, runs/NAME.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 exp001_baseline_ddsp|exp002_residual_model [section.key=value ...]" >&2
  exit 2
fi
NAME=$1
shift
case "$NAME" in
  exp001_baseline_ddsp) COMPOSITIONS="synth" ;;
  exp002_residual_model) COMPOSITIONS="gate mask" ;;
  *) echo "unknown experiment $NAME (exp001_baseline_ddsp or exp002_residual_model)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
DDSP=ddsp-demucs
[ -x .venv/bin/ddsp-demucs ] && DDSP=.venv/bin/ddsp-demucs
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
CONFIG=configs/demo.yaml
DATA=runs/experiments/data
SEPARATOR=${SEPARATOR:-auto}
SHARED_DATA=${SHARED_DATA:-../shared/data}

echo "== data: synthetic corpus and real remixes"
"$DDSP" corpus --out "$DATA/synthetic" --n-train 36 --n-valid 4 --n-test 8 --duration 10 --seed 0  # = demo.yaml
"$DDSP" corpus --kind remix-sample --out "$DATA/remix" --shared-data "$SHARED_DATA" --vocal-ratio-db -3 --subset test
for corpus in synthetic remix; do
  # separate prints the stem folder it wrote: its name is the separator actually used (auto picks one)
  stems=$("$DDSP" separate --musdb "$DATA/$corpus" --separator "$SEPARATOR" --stems-dir "$DATA/stems_$corpus" | tail -n 1)
  used=$(basename "$stems")
  # exit 1 = some songs skipped and listed (the 2 s and 3 s real vocals are shorter than one 4 s window); 2 = error
  "$DDSP" features --stems-dir "$DATA/stems_$corpus" --separator "$used" --out "$DATA/features_$corpus" \
    --config "$CONFIG" || [ $? -eq 1 ]
  "$DDSP" build-dataset --features-dir "$DATA/features_$corpus" --stems-dir "$DATA/stems_$corpus" \
    --separator "$used" --musdb-root "$DATA/$corpus" --out "$DATA/dataset_$corpus" --config "$CONFIG" || [ $? -eq 1 ]
done

for composition in $COMPOSITIONS; do
  run="runs/$NAME/$composition"
  echo "== $NAME: train $composition"
  "$DDSP" train --config "$CONFIG" --data "$DATA/dataset_synthetic" --out "$run" "model.composition=$composition" "$@"
  for corpus in synthetic remix; do
    echo "== $NAME: evaluate $composition on $corpus"
    "$DDSP" evaluate --checkpoint "$run/checkpoints/best.ckpt" --data "$DATA/dataset_$corpus" --split test \
      --out "$run/eval_$corpus"
  done
done
"$PY" scripts/experiment_table.py "runs/$NAME"
