# Sourced by the benchmark scripts: start or resume one run in the background,
# one thread per run (runs side by side share the cores evenly), output appended
# to OUT/NAME.log. `wait` for them, then build the table with `prunekit bench --table-only`.
start_or_resume() {  # OUT NAME [prunekit run options...]
  local out=$1 name=$2
  shift 2
  if [ -f "$out/$name/summary.json" ]; then return 0; fi
  if [ -f "$out/$name/config.json" ]; then
    OMP_NUM_THREADS=${THREADS:-1} prunekit run --resume "$out/$name" --quiet >> "$out/$name.log" 2>&1 &
  else
    mkdir -p "$out"
    OMP_NUM_THREADS=${THREADS:-1} prunekit run "$@" --out "$out" --name "$name" --quiet >> "$out/$name.log" 2>&1 &
  fi
}

import_offline_copy() {  # the CIFAR-10 JPEG copy next to the project, when present (no-op when cached)
  local copy=../shared/datasets/cifar10-jpeg.tar.gz
  if [ -f "$copy" ]; then prunekit data import "$copy" 2>/dev/null || true; fi
}
