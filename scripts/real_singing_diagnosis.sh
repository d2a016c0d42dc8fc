#!/usr/bin/env bash
# Diagnosis of exp003 (why a model hurts or helps real songs), on the held-out real songs of `make bench-real`,
# whole-song path, the bench's separator (SEPARATOR, default fallback as on this machine):
#   - oracle F0: the demo model, the real model and the comb filter with F0 tracked on the true vocal instead of
#     the separated one (`evaluate --oracle-f0`); compare with their tracked-F0 entries in
#     bench/results/real_singing.json;
#   - the audio encoder off: the real model's config (configs/demo.yaml loss.no_harm_weight=10.0) retrained with
#     model.use_audio_encoder=false.
# Needs runs/real_singing/{corpus,dataset,demo,real} from `make bench-real`. Finished evaluations are skipped and
# training resumes; outputs in runs/real_singing/diagnosis/<model>/eval_<set>, then a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
DDSP=ddsp-demucs
[ -x .venv/bin/ddsp-demucs ] && DDSP=.venv/bin/ddsp-demucs
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
RUN=runs/real_singing
OUT=$RUN/diagnosis
SEPARATOR=${SEPARATOR:-fallback}
for needed in "$RUN/corpus" "$RUN/dataset" "$RUN/demo/model.ckpt" "$RUN/real/model.ckpt"; do
  [ -e "$needed" ] || { echo "$needed is missing: run make bench-real first" >&2; exit 2; }
done

songs() {  # songs NAME EVAL_SET [evaluate options]: score the held-out songs into $OUT/NAME/eval_EVAL_SET
  local name=$1 set=$2
  shift 2
  [ -f "$OUT/$name/eval_$set/summary.json" ] && return 0
  "$DDSP" evaluate --songs "$RUN/corpus" --separator "$SEPARATOR" --out "$OUT/$name/eval_$set" "$@"
}

echo "== oracle F0"
songs demo oracle_f0 --checkpoint "$RUN/demo/model.ckpt" --oracle-f0
songs real oracle_f0 --checkpoint "$RUN/real/model.ckpt" --oracle-f0
songs comb oracle_f0 --comb --oracle-f0

echo "== the audio encoder off"
"$DDSP" train --config configs/demo.yaml --data "$RUN/dataset" --out "$OUT/real_no_encoder/train" \
  loss.no_harm_weight=10.0 model.use_audio_encoder=false
songs real_no_encoder tracked_f0 --checkpoint "$OUT/real_no_encoder/train/checkpoints/best.ckpt"

"$PY" scripts/experiment_table.py "$OUT"
