"""The atlas and head importance on Ray: shards of the corpus scored by Ray tasks, statistics merged exactly.

On a laptop this starts a local Ray; on a cluster start Ray there (`ray start --head`, then
`ray start --address=...` on each node), set RAY_ADDRESS (or call `ray.init(address=...)`
yourself) and run `attnlens atlas --ray`: each task loads the model by name once per worker
(or receives the LoadedModel through the object store) and returns only sums, sums of
squares and counts, which add up to exactly the single-machine statistics.
"""

from __future__ import annotations

from collections import Counter

from ..capturing import resolve_model
from ..errors import AttnlensError
from ..patterns.stats import PatternStats
from .importance import importance_moments, resolve_for
from .run import _progress_bar, score_pairs


def _ray():
    try:
        import ray  # noqa: PLC0415  (ray is an optional extra)
    except ImportError:
        raise AttnlensError("--ray needs Ray: pip install 'attnlens[ray]'") from None
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=False)
    return ray


def _score_shard(model, pairs, level, batch_size, intervention, seed, definitions=None, parser=None) -> PatternStats:
    return score_pairs(resolve_model(model), pairs, level=level, batch_size=batch_size,
                       intervention=intervention, seed=seed, definitions=definitions, parser=parser)


def score_pairs_ray(model, pairs, *, level="token", batch_size=32, shards=None, intervention=None, seed=0,
                    progress=True, definitions=None, parser=None) -> PatternStats:
    """Statistics of `pairs` computed by Ray tasks, one per shard, merged in shard order (parser: each task
    loads it, see score_pairs)."""
    ray = _ray()
    size = _shards(ray, len(pairs), shards)
    task = ray.remote(_score_shard)
    model_ref = model if model is None or isinstance(model, str) else ray.put(model)
    refs = [task.remote(model_ref, pairs[i:i + size], level, batch_size, intervention, seed, definitions, parser)
            for i in range(0, len(pairs), size)]
    return _merged(ray, refs, len(pairs), progress, lambda stats: stats.inputs + sum(stats.skipped.values()))


def _merged(ray, refs, total: int, progress: bool, done_of):
    """The tasks' results merged in shard order (`merge`), with a progress bar of `done_of(result)` inputs."""
    done: dict = {}
    pending = list(refs)
    with _progress_bar(total, progress) as bar:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                done[ref] = ray.get(ref)
                bar.update(done_of(done[ref]))
    merged = done[refs[0]]
    for ref in refs[1:]:
        merged = merged.merge(done[ref])
    return merged


def _shards(ray, n: int, shards: int | None) -> int:
    """Inputs per shard: `shards` of them (None: one per CPU of the Ray cluster)."""
    if shards is None:
        shards = max(1, int(ray.cluster_resources().get("CPU", 1)))
    shards = max(1, min(int(shards), n))
    return -(-n // shards)


class _ImportanceShard:
    """One shard's moments and skips, mergeable like PatternStats."""

    def __init__(self, moments, skipped: dict[str, int]):
        self.moments, self.skipped = moments, skipped

    def merge(self, other: "_ImportanceShard") -> "_ImportanceShard":
        return _ImportanceShard(self.moments.merge(other.moments), dict(Counter(self.skipped) + Counter(other.skipped)))


def _importance_shard(model, objective, pairs, offset, method, ablation, means, batch_size, seed, labels):
    lm, obj = resolve_for(model, objective)
    return _ImportanceShard(*importance_moments(lm, obj, pairs, method=method, ablation=ablation, means=means,
                                                batch_size=batch_size, seed=seed, labels=labels, offset=offset))


def importance_moments_ray(model, pairs, *, objective, method, ablation, means, batch_size, seed, labels,
                           shards=None, progress=True):
    """head_importance's per-head moments of `pairs` from Ray tasks, one per shard (each keyed by its corpus
    positions, so mlm masks and labels are those of one machine's run), merged in shard order."""
    ray = _ray()
    size = _shards(ray, len(pairs), shards)
    task = ray.remote(_importance_shard)
    model_ref = model if model is None or isinstance(model, str) else ray.put(model)
    refs = [task.remote(model_ref, objective, pairs[i:i + size], i, method, ablation, means, batch_size, seed, labels)
            for i in range(0, len(pairs), size)]
    merged = _merged(ray, refs, len(pairs), progress,
                     lambda shard: shard.moments.n + sum(shard.skipped.values()))
    return merged.moments, merged.skipped
