#!/usr/bin/env bash
# RecBole 1.2.1 peer runs for `python scripts/benchmark.py train`: SASRec and GRU4Rec on ml-100k for a fixed,
# small number of epochs, in RecBole's OWN virtual environment.
#
# This file only installs and calls the shared runner by path (../shared/peers/recbole/recbole_runner.py,
# see its README.md); nothing of RecBole or of the runner is copied into this repository.
#
#   bash benchmarks/peers/run_recbole.sh setup          # create the venv (README.md's install steps, in order)
#   nohup bash benchmarks/peers/run_recbole.sh run > benchmarks/work/peers/nohup.log 2>&1 &
#   bash benchmarks/peers/run_recbole.sh all            # setup, then run
#
# Env:
#   RECBOLE_VENV     the venv (default ~/.cache/recsys-peers/recbole-venv; outside the repository)
#   PEERS_DIR        the shared peer folder (default <repo>/../shared/peers/recbole)
#   PEER_OUT         logs and results/*.json (default <repo>/benchmarks/work/peers, git-ignored)
#   EPOCHS           epochs per model (default 2; RecBole SASRec takes ~127-250 s per epoch on the 2-core CPU)
#   MODELS           default "SASRec GRU4Rec"
#   TCMALLOC         path of libtcmalloc_minimal.so.4 to LD_PRELOAD (default empty: glibc malloc, as our runs)
#   THREADS          torch intra-op threads (OMP_NUM_THREADS); default empty: torch's default (2 on this machine).
#                    On a loaded 2-core machine 2 threads spin against each other; 1 is the fair setting there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${RECBOLE_VENV:-$HOME/.cache/recsys-peers/recbole-venv}"
PEERS_DIR="${PEERS_DIR:-$ROOT/../shared/peers/recbole}"
PEER_OUT="${PEER_OUT:-$ROOT/benchmarks/work/peers}"
EPOCHS="${EPOCHS:-2}"
MODELS="${MODELS:-SASRec GRU4Rec}"

setup() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import recbole, torch" 2>/dev/null; then
    echo "venv ready: $VENV"; return 0
  fi
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install torch==2.13.0               # first: the local CPU wheel
  "$VENV/bin/pip" install --no-deps recbole==1.2.1    # its metadata wants ray<=2.6.3 (tuning only)
  "$VENV/bin/pip" install -r "$PEERS_DIR/requirements.txt"
  "$VENV/bin/pip" freeze > "$VENV/freeze.txt"
  echo "venv ready: $VENV"
}

run() {
  [ -f "$PEERS_DIR/recbole_runner.py" ] || { echo "no runner at $PEERS_DIR/recbole_runner.py" >&2; exit 2; }
  mkdir -p "$PEER_OUT/results"
  cd "$PEER_OUT"
  local pre=(env) suffix=""
  if [ -n "${TCMALLOC:-}" ]; then pre+=(LD_PRELOAD="$TCMALLOC"); fi
  if [ -n "${THREADS:-}" ]; then pre+=(OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"); suffix="_${THREADS}t"; fi
  for model in $MODELS; do
    local lower name
    lower="$(echo "$model" | tr '[:upper:]' '[:lower:]')"
    name="${lower}_ml-100k_${EPOCHS}ep${suffix}"
    echo "$(date -Is) start $name (load $(cut -d' ' -f1-3 /proc/loadavg))"
    /usr/bin/time -v "${pre[@]}" "$VENV/bin/python" "$PEERS_DIR/recbole_runner.py" --model "$model" \
      --dataset ml-100k --config "$PEERS_DIR/configs/seq_common.yaml" --config "$PEERS_DIR/configs/$lower.yaml" \
      --epochs "$EPOCHS" --anomaly off --out "results/$name.json" > "$name.log" 2> "$name.err" \
      || { echo "FAILED: $name (see $PEER_OUT/$name.err)"; continue; }
    grep -E "Maximum resident|Elapsed \(wall|User time|System time" "$name.err" | sed "s/^/$name: /"
    echo "$(date -Is) done $name (load $(cut -d' ' -f1-3 /proc/loadavg))"
  done
}

case "${1:-all}" in
  setup) setup ;;
  run) run ;;
  all) setup; run ;;
  *) echo "usage: $0 [setup|run|all]" >&2; exit 2 ;;
esac
