"""The duplicate and leakage checks on fixed vectors (the real-model checks are in test_data.py)."""

from __future__ import annotations

import numpy as np

from ragtune.tuning.quality import near_duplicates, normalise, normalised_key


def unit(rows: list[list[float]]) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_near_duplicates_keep_the_first_of_each_group_across_blocks() -> None:
    rng = np.random.default_rng(0)
    base = unit(rng.normal(size=(50, 16)).tolist())
    noisy = unit((base + rng.normal(scale=0.01, size=base.shape)).tolist())
    vectors = np.concatenate([base, noisy])  # each row of the second half repeats one of the first
    for block in (7, 256):
        found = near_duplicates(vectors, 0.95, block=block)
        assert sorted(found) == list(range(50, 100))
        assert all(found[50 + i][0] == i and found[50 + i][1] >= 0.95 for i in range(50))


def test_a_dropped_row_is_not_a_reference() -> None:
    # b is 0.96 from a and is dropped; c is 0.96 from b but only 0.84 from a, so c stays
    a, b, c = unit([[1.0, 0.0, 0.0], [0.96, 0.28, 0.0], [0.84, 0.54, 0.0]])
    assert near_duplicates(np.stack([a, b, c]), 0.95) == {1: (0, 0.96)}


def test_normalising_ignores_case_spacing_and_unicode_form() -> None:
    assert normalise("  Ｅlodie\u00a0MARCHAND ") == "elodie marchand"
    one = [{"role": "user", "content": "Who is the CEO?"}]
    assert normalised_key(one) == normalised_key([{"role": "user", "content": "who IS  the ceo?"}])
    assert normalised_key(one) != normalised_key([{"role": "assistant", "content": "Who is the CEO?"}])
