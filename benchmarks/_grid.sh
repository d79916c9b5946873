# Sourced by the benchmark scripts.
import_offline_copy() {  # the CIFAR-10 JPEG copy next to the project, when present (no-op when cached)
  local copy=../shared/datasets/cifar10-jpeg.tar.gz
  if [ -f "$copy" ]; then prunekit data import "$copy" 2>/dev/null || true; fi
}

link_finished_run() {  # RUN LINK: count a finished run as a cell of a second grid (bench checks the settings match)
  local run=$1 link=$2
  if [ -L "$link" ] && [ ! -e "$link" ]; then
    echo "$link links to $(readlink "$link"), which does not exist; fix or remove the link" >&2
    return 1
  fi
  if [ -e "$link" ]; then return 0; fi
  if [ ! -f "$run/summary.json" ]; then
    echo "$run has not finished; run the grid that makes it first (it is reused as $link)" >&2
    return 1
  fi
  mkdir -p "$(dirname "$link")"
  # a relative link, so that the results folder can move (python: BSD/macOS realpath has no --relative-to)
  ln -s "$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$run" "$(dirname "$link")")" "$link"
}
