# Sourced by the benchmark scripts.
import_offline_copy() {  # the CIFAR-10 JPEG copy next to the project, when present (no-op when cached)
  local copy=../shared/datasets/cifar10-jpeg.tar.gz
  if [ -f "$copy" ]; then prunekit data import "$copy" 2>/dev/null || true; fi
}
