"""First-party methods: recipes of one ranker, reinitializer and schedule."""

from prunekit import Method

standard = Method("standard", "plain training, no dropping", schedule="none")
repr_ = Method(
    "repr",
    "RePr: orthogonality ranking, null-space re-init, S1/S2 cycles (p=0.3, S1=20, S2=10)",
    schedule="repr",
    ranker="orthogonality",
    reinitializer="nullspace",
)
# The first author's own code (issue #26): each difference from `repr` is an option of its own, so that
# one can be switched back alone: --set normalization=filter, --set max_layer_fraction=0.75,
# --reinit nullspace --next-layer keep (nullspace's own default is next_layer=zero), --next-layer zero.
repr_author = Method(
    "repr-author",
    "RePr as the first author's code does it: layer-normalised orthogonality with no per-layer cap, "
    "Gram-Schmidt re-init of the old values, next layer kept (cycle as repr)",
    schedule="repr",
    ranker="orthogonality",
    reinitializer="gram-schmidt",
    defaults={"ranker": {"normalization": "layer", "max_layer_fraction": 1.0}},
)
magnitude = Method(
    "magnitude", "RePr cycle with L1 filter-norm ranking", schedule="repr", ranker="l1", reinitializer="nullspace"
)
random = Method("random", "RePr cycle with random ranking", schedule="repr", ranker="random", reinitializer="nullspace")
reverse_repr = Method(
    "reverse-repr",
    "RePr cycle dropping the most orthogonal filters (ablation)",
    schedule="repr",
    ranker="reverse-orthogonality",
    reinitializer="nullspace",
)

# Permanent pruning: drop once (or on an iterative/gradual ramp) and fine-tune; nothing is restored.
_SWITCH = "then fine-tune (--schedule iterative|gradual to change)"
prune_l1 = Method("prune-l1", f"one-shot prune with L1 filter norm, {_SWITCH}", schedule="oneshot", ranker="l1")
prune_l2 = Method("prune-l2", f"one-shot prune with L2 filter norm, {_SWITCH}", schedule="oneshot", ranker="l2")
prune_random = Method(
    "prune-random", f"one-shot prune of random filters, {_SWITCH}", schedule="oneshot", ranker="random"
)
prune_taylor = Method(
    "prune-taylor", f"one-shot prune with first-order Taylor importance, {_SWITCH}", schedule="oneshot", ranker="taylor"
)
prune_orthogonality = Method(
    "prune-orthogonality",
    f"one-shot prune of the most overlapping filters (RePr's ranking), {_SWITCH}",
    schedule="oneshot",
    ranker="orthogonality",
)
prune_fpgm = Method(
    "prune-fpgm",
    f"one-shot prune of filters nearest the geometric median (FPGM), the same "
    f"fraction from each layer as in its paper, {_SWITCH}",
    schedule="oneshot",
    ranker="fpgm",
    defaults={"ranker": {"scope": "layer"}},
)
