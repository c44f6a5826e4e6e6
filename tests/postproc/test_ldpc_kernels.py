"""Coloured layered decoder: layout validity, numba kernel versus numpy reference (bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from diqkd.errors import ReconciliationError
from diqkd.postproc._ldpc_codes import MotherCode, build_code
from diqkd.postproc._ldpc_kernels import (
    KNOWN_LLR,
    DecoderLayout,
    LayeredDecoder,
    bsc_llr,
    layered_numba,
    layered_numba_serial,
    layered_numpy,
    prepare_layout,
)


def _problem(
    n: int, k: int, qber: float, seed: int
) -> tuple[MotherCode, NDArray[np.uint8], NDArray[np.float32], NDArray[np.uint8]]:
    code = build_code(n, k, 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n, dtype=np.uint8)
    y = x ^ (rng.random(n) < qber).astype(np.uint8)
    word = np.zeros(code.n, np.uint8)
    word[code.key_positions] = x
    prior = np.full(code.n, KNOWN_LLR, np.float32)
    prior[code.key_positions] = (1 - 2 * y.astype(np.float32)) * bsc_llr(qber)
    return code, code.syndrome(word), prior, x


def _assert_valid(layout: DecoderLayout, ptr: NDArray[np.int64], var: NDArray[np.int32]) -> None:
    m = ptr.size - 1
    assert layout.matches(ptr, var)
    np.testing.assert_array_equal(np.sort(layout.order), np.arange(m))
    np.testing.assert_array_equal(np.sort(layout.edge), np.arange(var.size))
    np.testing.assert_array_equal(var[layout.edge], layout.var)
    assert layout.block_start[-1] == var.size
    np.testing.assert_array_equal(np.diff(layout.block_first, append=m), layout.block_width)
    for b in range(layout.block_first.size):
        w, d = int(layout.block_width[b]), int(layout.block_deg[b])
        checks = layout.order[layout.block_first[b] : layout.block_first[b] + w]
        np.testing.assert_array_equal(np.diff(ptr)[checks], d)
        slots = layout.var[layout.block_start[b] : layout.block_start[b + 1]].reshape(d, w)
        for lane, c in enumerate(checks.tolist()):  # [position in check][lane], CSR order
            np.testing.assert_array_equal(slots[:, lane], var[ptr[c] : ptr[c + 1]])
        assert np.unique(slots).size == slots.size  # lanes share no variable


@pytest.mark.parametrize("width", [1, 7, 64])
def test_layout_is_a_partition_into_disjoint_blocks(width: int) -> None:
    code = build_code(2000, 38, 1)
    layout = prepare_layout(code.check_ptr, code.check_var, width)
    _assert_valid(layout, code.check_ptr, code.check_var)
    assert int(layout.block_width.max()) <= width
    assert not layout.matches(code.check_ptr, np.roll(code.check_var, 1))
    assert not layout.matches(code.check_ptr[:-1], code.check_var)
    with pytest.raises(ValueError):
        layout.order[0] = 1  # immutable


def _star(m: int) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """``m`` checks that all contain variable 0 (plus one own variable): ``m`` colours."""
    ptr = np.arange(0, 2 * m + 1, 2, dtype=np.int64)
    var = np.stack([np.zeros(m), np.arange(1, m + 1)], axis=1).ravel().astype(np.int32)
    return ptr, var


def test_colouring_grows_past_its_first_words() -> None:
    ptr, var = _star(200)
    layout = prepare_layout(ptr, var)
    assert layout.n_colors == 200
    _assert_valid(layout, ptr, var)
    rng = np.random.default_rng(2)
    syn = rng.integers(0, 2, 200, dtype=np.uint8)
    prior = rng.normal(0, 3, 201).astype(np.float32)
    out = []
    for kernel in (layered_numba, layered_numpy):
        post, r = prior.copy(), np.zeros(var.size, np.float32)
        out.append((kernel(ptr, var, syn, post, r, 5, 5, layout), post, r))
    assert out[0][0] == out[1][0]
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_array_equal(out[0][2], out[1][2])


@pytest.mark.parametrize(
    ("qber", "converges", "width"),
    [(0.01, True, 64), (0.01, True, 5), (0.05, None, 64), (0.09, False, 16), (0.09, False, 1)],
)
def test_coloured_kernel_matches_numpy_reference_bit_for_bit(
    qber: float, converges: bool | None, width: int
) -> None:
    code, s, prior, x = _problem(800, 38, qber, 3)
    layout = prepare_layout(code.check_ptr, code.check_var, width)
    results = []
    for kernel in (layered_numba, layered_numpy):
        post, r = prior.copy(), np.zeros(code.n_edges, np.float32)
        it, ok = kernel(code.check_ptr, code.check_var, s, post, r, 40, 8, layout)
        results.append((it, ok, post, r))
    (it_a, ok_a, post_a, r_a), (it_b, ok_b, post_b, r_b) = results
    assert (it_a, ok_a) == (it_b, ok_b)
    if converges is not None:
        assert ok_a is converges
    np.testing.assert_array_equal(post_a.view(np.int32), post_b.view(np.int32))
    np.testing.assert_array_equal(r_a.view(np.int32), r_b.view(np.int32))
    if ok_a:
        np.testing.assert_array_equal((post_a < 0)[code.key_positions], x)


def test_skipped_layers_keep_their_messages_in_both_decoders() -> None:
    # most symbols known: many checks are confident and satisfied from the first sweep on
    code, s, prior, x = _problem(800, 38, 0.08, 4)
    prior[code.key_positions[:780]] = (1 - 2 * x[:780].astype(np.float32)) * KNOWN_LLR
    layout = prepare_layout(code.check_ptr, code.check_var, 8)
    out = []
    for backend in ("numba", "numpy"):
        dec = LayeredDecoder(code.check_ptr, code.check_var, s, prior, backend, layout=layout)
        dec.run(3, 3)
        out.append((dec.iterations, dec.post, dec.r))
    assert out[0][0] == out[1][0]
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_array_equal(out[0][2], out[1][2])
    never = out[0][2] == 0
    assert 0 < np.count_nonzero(never) < never.size  # some layers skipped, others updated


def test_decoder_reuses_a_layout_and_keeps_messages_by_csr_edge() -> None:
    code, s, prior, x = _problem(2000, 38, 0.045, 5)
    layout = prepare_layout(code.check_ptr, code.check_var)
    shared = LayeredDecoder(code.check_ptr, code.check_var, s, prior, layout=layout)
    own = LayeredDecoder(code.check_ptr, code.check_var, s, prior)
    ref = LayeredDecoder(code.check_ptr, code.check_var, s, prior, backend="numpy", layout=layout)
    post, r = prior.copy(), np.zeros(code.n_edges, np.float32)
    layered_numba(code.check_ptr, code.check_var, s, post, r, 12, 12, layout)
    for dec in (shared, own, ref):
        assert not dec.run(12, 12)
        np.testing.assert_array_equal(dec.post, post)
        np.testing.assert_array_equal(dec.r, r)
    # reveal 1200 key bits in a public random order, as the protocol does (the first 1200 in
    # index order are the lowest-degree nodes: what remains would be a dense high-degree graph)
    pick = np.sort(np.random.default_rng(9).permutation(x.size)[:1200])
    positions = code.key_positions[pick]
    for dec in (shared, ref):  # warm start after reveals, both backends
        dec.set_known(positions, x[pick])
        assert dec.run(100, 20)
    np.testing.assert_array_equal(shared.post, ref.post)
    np.testing.assert_array_equal(shared.r, ref.r)
    np.testing.assert_array_equal(shared.hard()[code.key_positions], x)


def test_serial_baseline_decodes_the_same_word() -> None:
    code, s, prior, x = _problem(800, 38, 0.01, 3)
    post, r = prior.copy(), np.zeros(code.n_edges, np.float32)
    _, ok = layered_numba_serial(code.check_ptr, code.check_var, s, post, r, 40, 8)
    assert ok
    np.testing.assert_array_equal((post < 0)[code.key_positions], x)


def test_layout_of_another_code_is_rejected() -> None:
    code, s, prior, _ = _problem(800, 38, 0.01, 3)
    other = build_code(900, 38, 1)
    layout = prepare_layout(other.check_ptr, other.check_var)
    with pytest.raises(ReconciliationError):
        LayeredDecoder(code.check_ptr, code.check_var, s, prior, layout=layout)
    with pytest.raises(ReconciliationError):
        prepare_layout(code.check_ptr, code.check_var, 0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_unsatisfied_checks_match_the_syndrome_of_the_hard_decisions(backend: str) -> None:
    code, s, prior, _ = _problem(2000, 38, 0.03, 11)
    dec = LayeredDecoder(code.check_ptr, code.check_var, s, prior, backend)  # type: ignore[arg-type]
    dec.run(1, 1)  # part of the way
    want = np.flatnonzero(code.syndrome(dec.hard()) != s)
    assert want.size > 0
    np.testing.assert_array_equal(dec.unsatisfied(), want)
    assert dec.run(200, 30)
    assert dec.unsatisfied().size == 0


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_pin_restores_failed_trials_and_keeps_the_one_that_decodes(backend: str) -> None:
    code, s, prior, x = _problem(2000, 38, 0.01, 4)
    # one key bit "known" with the wrong value: BP cannot overturn a ±100 prior, so it stalls
    # with that variable's checks unsatisfied, a trapping set in miniature
    v = int(code.key_positions[17])
    prior[v] = -KNOWN_LLR if x[17] == 0 else KNOWN_LLR
    dec = LayeredDecoder(code.check_ptr, code.check_var, s, prior, backend)  # type: ignore[arg-type]
    assert not dec.run(60, 10)
    unsat = dec.unsatisfied()
    assert 0 < unsat.size <= int(np.count_nonzero(code.check_var == v))
    post, r, its = dec.post.copy(), dec.r, dec.iterations
    others = np.array([code.key_positions[3], code.key_positions[5]], dtype=np.int64)
    assert not dec.pin(others, 40.0, 5, 3)  # the wrong variables: nothing changes but the count
    np.testing.assert_array_equal(dec.post, post)
    np.testing.assert_array_equal(dec.r, r)
    assert dec.iterations > its
    # the third trial decodes; trying v twice finds the same word, which is no rival, so even a
    # huge margin keeps it
    assert dec.pin(np.r_[others, v, v], 2 * KNOWN_LLR, 30, 8, margin=1e9)
    np.testing.assert_array_equal(dec.hard()[code.key_positions], x)
    assert dec.unsatisfied().size == 0


def test_pin_leaves_a_tie_undecided() -> None:
    # two checks on the same two variables: both 00 and 11 satisfy the zero syndrome, and with
    # priors +1 and −1 they cost the same (1 nat each); the stalled state 01 is neither
    ptr = np.array([0, 2, 4], dtype=np.int64)
    var = np.array([0, 1, 0, 1], dtype=np.int32)
    syn = np.zeros(2, dtype=np.uint8)
    for backend in ("numba", "numpy"):
        dec = LayeredDecoder(ptr, var, syn, np.array([1.0, -1.0], np.float32), backend)  # type: ignore[arg-type]
        np.testing.assert_array_equal(dec.unsatisfied(), [0, 1])
        post, r = dec.post.copy(), dec.r
        assert not dec.pin(np.array([0, 1]), 10.0, 20, 5, margin=0.5)  # a tie: undecided
        np.testing.assert_array_equal(dec.post, post)
        np.testing.assert_array_equal(dec.r, r)
        assert dec.pin(np.array([0, 1]), 10.0, 20, 5)  # margin 0: one of the two words
        assert dec.unsatisfied().size == 0 and dec.hard()[0] == dec.hard()[1]
