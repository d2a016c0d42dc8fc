#!/usr/bin/env bash
# Train a residual DDSP model: scripts/train_ddsp_residual.sh CONFIG NAME [key=value ...]
# Writes runs/NAME (checkpoints, logs, resolved config); re-running resumes from runs/NAME/checkpoints/last.ckpt.
# The dataset directory is DATA_DIR (default data/dataset).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NAME [section.key=value ...]" >&2
  exit 2
fi
CONFIG=$1
NAME=$2
shift 2
cd "$(dirname "$0")/.."
DDSP=ddsp-demucs
[ -x .venv/bin/ddsp-demucs ] && DDSP=.venv/bin/ddsp-demucs
exec "$DDSP" train --config "$CONFIG" --data "${DATA_DIR:-data/dataset}" --out "runs/$NAME" "$@"
