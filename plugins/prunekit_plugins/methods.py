"""First-party methods: recipes of one ranker, reinitializer and schedule."""
from prunekit import Method

standard = Method("standard", "plain training, no dropping", schedule="none")
repr_ = Method(
    "repr", "RePr: orthogonality ranking, null-space re-init, S1/S2 cycles (p=0.3, S1=20, S2=10)",
    schedule="repr", ranker="orthogonality", reinitializer="nullspace",
)
magnitude = Method("magnitude", "RePr cycle with L1 filter-norm ranking", schedule="repr", ranker="l1",
                   reinitializer="nullspace")
random = Method("random", "RePr cycle with random ranking", schedule="repr", ranker="random",
                reinitializer="nullspace")
reverse_repr = Method("reverse-repr", "RePr cycle dropping the most orthogonal filters (ablation)",
                      schedule="repr", ranker="reverse-orthogonality", reinitializer="nullspace")
