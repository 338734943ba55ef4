"""CrossModalityIdentitySampler: batch layout, epoch rule, replacement, determinism and distributed sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from idkl_lib.data import INFRARED, VISIBLE, CrossModalityIdentitySampler, ImageDataset, Sample, VIDataset
from idkl_lib.data.transforms import build_transforms


def make_samples(counts: dict[int, tuple[int, int]], seed: int = 0) -> list[Sample]:
    """Records for ``{pid: (n_infrared, n_visible)}``, shuffled so indices are not grouped by identity."""
    records = [
        Sample(f"/x/{pid}_{mod}_{i}.jpg", pid, 3 if mod == INFRARED else 1, mod)
        for pid, (n_ir, n_vis) in counts.items()
        for mod, n in ((INFRARED, n_ir), (VISIBLE, n_vis))
        for i in range(n)
    ]
    order = np.random.default_rng(seed).permutation(len(records))
    return [records[i] for i in order]


COUNTS = {0: (6, 9), 1: (4, 4), 2: (1, 7), 3: (9, 2), 4: (5, 12), 5: (3, 3), 6: (8, 8), 7: (2, 5)}


def assert_layout(samples: list[Sample], batches: np.ndarray, p: int, k: int) -> None:
    for batch in batches:
        assert batch.shape == (p * k,)
        blocks = batch.reshape(p, k)
        block_pids = []
        for block in blocks:
            pids = {samples[i].pid for i in block}
            assert len(pids) == 1
            block_pids.append(pids.pop())
            assert [samples[i].modality for i in block] == [INFRARED, VISIBLE] * (k // 2)
        assert len(set(block_pids)) == p


@pytest.mark.parametrize(("p", "k", "seed"), [(2, 4, 0), (3, 2, 1), (4, 6, 2), (8, 4, 3), (1, 10, 4)])
def test_every_batch_has_p_distinct_ids_and_interleaved_ir_visible_blocks(p: int, k: int, seed: int) -> None:
    samples = make_samples(COUNTS, seed)
    sampler = CrossModalityIdentitySampler(samples, p=p, k=k, seed=seed)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = sampler.batches()
        assert len(batches) > 0
        assert_layout(samples, batches, p, k)
        flat = list(sampler)
        assert flat == batches.reshape(-1).tolist() and len(sampler) == len(flat) == len(batches) * p * k


def test_epoch_rule_hand_computed() -> None:
    # h = K/2 = 2. chunks c = max(min(n_I, n_V), h) // h: id0 min 4 -> 2, id1 min 1 -> max(1, 2) // 2 = 1,
    # id2 min 5 -> 2. With P = 3 every batch takes one chunk of all three ids until id1 runs out: 1 batch.
    samples = make_samples({0: (4, 6), 1: (1, 9), 2: (5, 5)})
    sampler = CrossModalityIdentitySampler(samples, p=3, k=4)
    assert len(sampler.batches()) == 1 and len(sampler) == 12
    # With P = 2 and the same ids: 5 chunks -> at most floor(5 / 2) = 2 batches; after the first batch 3 chunks
    # remain over at least two ids (at most 2 each), so exactly 2 are formed whatever the seed.
    for seed in range(5):
        assert len(CrossModalityIdentitySampler(samples, p=2, k=4, seed=seed).batches()) == 2


def test_without_replacement_when_enough_images_with_replacement_otherwise() -> None:
    samples = make_samples({0: (4, 7), 1: (1, 3), 2: (6, 4)})
    sampler = CrossModalityIdentitySampler(samples, p=3, k=4, seed=5)
    drawn = sampler.batches().reshape(-1)
    counts = np.bincount(drawn, minlength=len(samples))
    for pid, (n_ir, n_vis) in {0: (4, 7), 1: (1, 3), 2: (6, 4)}.items():
        ir = [i for i, s in enumerate(samples) if s.pid == pid and s.modality == INFRARED]
        vis = [i for i, s in enumerate(samples) if s.pid == pid and s.modality == VISIBLE]
        used_ir, used_vis = counts[ir], counts[vis]
        assert used_ir.sum() == used_vis.sum()  # as many infrared as visible images per identity
        if min(n_ir, n_vis) >= 2:
            assert used_ir.max() <= 1 and used_vis.max() <= 1  # never repeated
    lone_ir = next(i for i, s in enumerate(samples) if s.pid == 1 and s.modality == INFRARED)
    assert counts[lone_ir] == 2  # the only infrared image of id 1 fills both infrared slots of its chunk


def test_identity_with_too_few_images_in_one_modality_never_crashes() -> None:
    samples = make_samples({0: (1, 20), 1: (20, 1), 2: (1, 1)})  # docs/method.md#42-sampler
    sampler = CrossModalityIdentitySampler(samples, p=3, k=10)
    assert_layout(samples, sampler.batches(), 3, 10)
    assert len(sampler.batches()) == 1


def test_same_seed_and_epoch_repeat_other_epochs_and_seeds_differ() -> None:
    samples = make_samples(COUNTS)
    a = CrossModalityIdentitySampler(samples, p=3, k=4, seed=11)
    b = CrossModalityIdentitySampler(samples, p=3, k=4, seed=11)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(CrossModalityIdentitySampler(samples, p=3, k=4, seed=11, epoch=1)) == list(a)
    a.set_epoch(0)
    assert list(a) == first
    assert list(CrossModalityIdentitySampler(samples, p=3, k=4, seed=12)) != first


@pytest.mark.parametrize("replicas", [2, 3])
def test_distributed_ranks_partition_the_single_process_sequence(replicas: int) -> None:
    samples = make_samples({pid: (6 + pid % 3, 8) for pid in range(10)})
    single = CrossModalityIdentitySampler(samples, p=2, k=4, seed=3, epoch=2).batches()
    ranks = [
        CrossModalityIdentitySampler(
            samples, p=2, k=4, seed=3, epoch=2, num_replicas=replicas, rank=r, shard="batches"
        ).batches()
        for r in range(replicas)
    ]
    per_rank = len(single) // replicas
    assert per_rank > 0 and all(len(r) == per_rank for r in ranks)
    interleaved = np.stack([ranks[r][j] for j in range(per_rank) for r in range(replicas)])
    assert np.array_equal(interleaved, single[: per_rank * replicas])
    for r in range(replicas):
        assert_layout(samples, ranks[r], 2, 4)


@pytest.mark.parametrize("replicas", [2, 3, 6])
def test_identity_block_shards_concatenate_to_the_single_process_batches(replicas: int) -> None:
    samples = make_samples({pid: (6 + pid % 3, 8) for pid in range(14)})
    single = CrossModalityIdentitySampler(samples, p=6, k=4, seed=3, epoch=2).batches()
    ranks = [
        CrossModalityIdentitySampler(samples, p=6, k=4, seed=3, epoch=2, num_replicas=replicas, rank=r)
        for r in range(replicas)
    ]
    assert all(r.batch_size == 6 // replicas * 4 for r in ranks)
    joined = np.concatenate([r.batches() for r in ranks], axis=1)  # rank order = identity-block order
    assert joined.shape == single.shape and np.array_equal(joined, single)
    for r in ranks:  # every rank's share is whole identity blocks in the sampler layout
        assert_layout(samples, r.batches(), 6 // replicas, 4)
        assert list(r) == r.batches().reshape(-1).tolist()


def test_identity_block_shards_need_p_divisible_by_the_process_count() -> None:
    samples = make_samples({pid: (4, 4) for pid in range(12)})
    with pytest.raises(ValueError, match=r"p=6 .* cannot be split over 4 processes; .*\(1, 2, 3, 6\)"):
        CrossModalityIdentitySampler(samples, p=6, k=4, num_replicas=4, rank=0)


def test_rank_without_batches_warns() -> None:
    samples = make_samples({0: (2, 2), 1: (2, 2)})
    sampler = CrossModalityIdentitySampler(samples, p=2, k=2, num_replicas=3, rank=2, shard="batches")
    assert len(sampler.global_batches()) == 2 and len(sampler) == 0
    with pytest.warns(RuntimeWarning, match="rank 2 gets no batch"):
        assert list(sampler) == []


def test_one_modality_identities_are_left_out_with_a_warning() -> None:
    samples = make_samples({0: (3, 3), 1: (0, 4), 2: (3, 3), 3: (5, 0)})
    with pytest.warns(RuntimeWarning, match=r"identities \[1, 3\] have images of only one modality"):
        sampler = CrossModalityIdentitySampler(samples, p=2, k=2)
    assert {samples[i].pid for i in sampler} == {0, 2}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 3}, ValueError, r"k must be even"),
        ({"k": 0}, ValueError, r"k must be >= 2, got 0"),
        ({"p": 0}, ValueError, r"p must be >= 1, got 0"),
        ({"p": 5}, ValueError, r"p=5 exceeds the 4 identities that have both modalities"),
        ({"p": 2.0}, TypeError, r"p must be an int"),
        ({"k": True}, TypeError, r"k must be an int"),
        ({"rank": 2, "num_replicas": 2}, ValueError, r"rank must be < num_replicas=2, got 2"),
        ({"num_replicas": 0}, ValueError, r"num_replicas must be >= 1"),
        ({"seed": -1}, ValueError, r"seed must be >= 0"),
    ],
)
def test_argument_errors(kwargs: dict, error: type, match: str) -> None:
    samples = make_samples({0: (3, 3), 1: (3, 3), 2: (3, 3), 3: (3, 3)})
    with pytest.raises(error, match=match):
        CrossModalityIdentitySampler(samples, **{"p": 2, "k": 2, **kwargs})


def test_bad_modality_values() -> None:
    with pytest.raises(ValueError, match=r"modality values must be 0 \(visible\) or 1 \(infrared\), got \[2\]"):
        CrossModalityIdentitySampler([Sample("a", 0, 1, 2), Sample("b", 0, 1, 0)], p=1, k=2)
    sampler = CrossModalityIdentitySampler(make_samples({0: (2, 2)}), p=1, k=2)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        sampler.set_epoch(-1)


def test_with_a_dataloader_on_the_synthetic_dataset(sysu_dataset: VIDataset) -> None:
    sampler = CrossModalityIdentitySampler(sysu_dataset.train, p=3, k=4, seed=0)
    loader = DataLoader(
        ImageDataset(sysu_dataset.train, build_transforms(32, 16, train=True)),
        batch_size=sampler.batch_size,
        sampler=sampler,
        drop_last=True,
    )
    assert len(loader) == len(sampler.batches())
    images, pids, camids, modality, index = next(iter(loader))
    assert images.shape == (12, 3, 32, 16)
    assert modality.tolist() == [INFRARED, VISIBLE] * 6
    assert torch.equal(pids.view(3, 4), pids.view(3, 4)[:, :1].expand(3, 4)) and len(set(pids.tolist())) == 3
    assert all(c in (3, 6) for c in camids[0::2].tolist()) and all(c in (1, 2, 4, 5) for c in camids[1::2].tolist())
    assert index.tolist() == sampler.batches()[0].tolist()


def _reference_epoch(samples: list[Sample], p: int, k: int, seed: int, epoch: int) -> list[int]:
    """A literal, loop-by-loop simulation of the reference's epoch (docs/method.md, sampler) with the same draws.

    Chunk formation follows this library's rule (shuffled copies for a poor modality); the identity choice is the
    reference's: ``np.random.choice(avai_pids, P, replace=False)`` over the identities with chunks left, popping the
    first chunk of each and removing an identity from the list when it runs out.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    h = k // 2
    pools: dict[int, tuple[list[int], list[int]]] = {}
    for pid in sorted({s.pid for s in samples}):
        ir = [i for i, s in enumerate(samples) if s.pid == pid and s.modality == INFRARED]
        vis = [i for i, s in enumerate(samples) if s.pid == pid and s.modality == VISIBLE]
        if ir and vis:
            pools[pid] = (ir, vis)
    chunk_lists: dict[int, list[list[int]]] = {}
    for pid, (ir, vis) in pools.items():
        c = max(min(len(ir), len(vis)), h) // h
        drawn = []
        for pool in (ir, vis):
            seq: list[int] = []
            while len(seq) < c * h:
                seq.extend(rng.permutation(np.array(pool)).tolist())
            drawn.append(seq[: c * h])
        chunk_lists[pid] = []
        for j in range(c):
            chunk: list[int] = []
            for t in range(h):
                chunk += [drawn[0][j * h + t], drawn[1][j * h + t]]
            chunk_lists[pid].append(chunk)
    position = {pid: j for j, pid in enumerate(pools)}  # the library draws positions in identity order
    avai_pids = list(pools)
    final_idxs: list[int] = []
    while len(avai_pids) >= p:
        selected = rng.choice([position[q] for q in avai_pids], p, replace=False)
        for j in selected:
            pid = list(pools)[j]
            final_idxs.extend(chunk_lists[pid].pop(0))
            if not chunk_lists[pid]:
                avai_pids.remove(pid)
    return final_idxs


SYSU_LIKE = {pid: (n_ir, n_vis) for pid, (n_ir, n_vis) in enumerate([(3, 20), (24, 11), (7, 7), (40, 9), (10, 30)] * 4)}


@pytest.mark.parametrize(("p", "k", "seed"), [(4, 4, 0), (6, 10, 3), (3, 2, 7)])
def test_uniform_choice_equals_a_literal_simulation_of_the_reference(p: int, k: int, seed: int) -> None:
    samples = make_samples(SYSU_LIKE, seed)
    sampler = CrossModalityIdentitySampler(samples, p=p, k=k, seed=seed)
    assert sampler.identity_choice == "uniform"
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert list(sampler) == _reference_epoch(samples, p, k, seed, epoch)


def test_proportional_choice_spreads_rich_identities_over_the_epoch() -> None:
    # id 0 has 8 chunks, ids 1..7 one each; P = 2. Uniform choice uses id 0 in about half of the early batches and
    # leaves most of its chunks unused; proportional choice takes it in almost every batch until its share drops.
    samples = make_samples({0: (16, 16), **{pid: (2, 2) for pid in range(1, 8)}})
    used = {}
    for mode in ("uniform", "proportional"):
        counts = []
        for seed in range(200):
            batches = CrossModalityIdentitySampler(samples, p=2, k=4, seed=seed, identity_choice=mode).batches()
            counts.append(sum(samples[b[0]].pid == 0 or samples[b[4]].pid == 0 for b in batches))
        used[mode] = float(np.mean(counts))
        for seed in range(3):
            s = CrossModalityIdentitySampler(samples, p=2, k=4, seed=seed, identity_choice=mode)
            assert_layout(samples, s.batches(), 2, 4)
    assert used["proportional"] > used["uniform"] + 0.5
    with pytest.raises(ValueError, match="identity_choice='random'"):
        CrossModalityIdentitySampler(samples, p=2, k=4, identity_choice="random")  # type: ignore[arg-type]
