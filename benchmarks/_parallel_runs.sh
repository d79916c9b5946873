# Sourced by the benchmark scripts: start or resume runs side by side, one thread
# each (they share the cores evenly), output appended to OUT/NAME.log. Interrupting
# the script stops its runs too (each resumes from its last finished epoch);
# `wait_runs` returns non-zero when any run failed (see its log).
RUN_PIDS=()
trap 'kill "${RUN_PIDS[@]}" 2>/dev/null; exit 130' INT TERM

start_or_resume() {  # OUT NAME [prunekit run options...]
  local out=$1 name=$2
  shift 2
  if [ -f "$out/$name/summary.json" ]; then return 0; fi
  mkdir -p "$out"
  if [ -f "$out/$name/config.json" ]; then
    OMP_NUM_THREADS=${THREADS:-1} prunekit run --resume "$out/$name" --quiet >> "$out/$name.log" 2>&1 &
  else
    OMP_NUM_THREADS=${THREADS:-1} prunekit run "$@" --out "$out" --name "$name" --quiet >> "$out/$name.log" 2>&1 &
  fi
  RUN_PIDS+=($!)
}

wait_runs() {  # 0 when every run started here finished cleanly
  local rc=0 pid
  for pid in "${RUN_PIDS[@]}"; do wait "$pid" || rc=1; done
  [ "$rc" = 0 ] || echo "a run failed: see the .log files next to the run folders" >&2
  return "$rc"
}

import_offline_copy() {  # the CIFAR-10 JPEG copy next to the project, when present (no-op when cached)
  local copy=../shared/datasets/cifar10-jpeg.tar.gz
  if [ -f "$copy" ]; then prunekit data import "$copy" 2>/dev/null || true; fi
}
