"""Quasi-cyclic LDPC codes: construction, the ratio-domain kernel beside its numpy reference,
the decoder's LLR view, and the protocol with family "qc"."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diqkd.errors import ReconciliationError
from diqkd.postproc._ldpc_codes import build_code, ladder, parse_code_id, qc_dimensions
from diqkd.postproc._ldpc_kernels import KNOWN_LLR, bsc_llr
from diqkd.postproc._ldpc_qc import (
    QC_MIN_KEY_BITS,
    QcDecoder,
    QcStructure,
    expand,
    lift_size,
    message_caps,
    qc_graph,
    qc_layered_numba,
    qc_layered_numpy,
    qc_structure,
    ratios,
)
from diqkd.postproc.ldpc import (
    FAST_START_ABOVE,
    FAST_START_EFFICIENCY,
    LdpcAlice,
    LdpcBob,
    LdpcStart,
    _structure,
    default_efficiency,
    run_ldpc,
)
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.reconcile import binary_entropy

N_KEY = 100_000  # the smallest keys the tests use with the protocol (Z = 64)


def small_code(
    seed: int, nb: int = 48, mb: int = 12, z: int = 16
) -> tuple[np.ndarray, np.ndarray, QcStructure]:
    """A small lift: base columns of degree 2–4, concentrated base rows."""
    rng = np.random.default_rng(seed)
    var = rng.choice([2, 3, 3, 4], nb).astype(np.int64)
    e = int(var.sum())
    chk = np.full(mb, e // mb, dtype=np.int64)
    chk[: e - int(chk.sum())] += 1
    return qc_graph(var, chk, z, rng)


def syndrome(ptr: np.ndarray, var: np.ndarray, x: np.ndarray) -> np.ndarray:
    rows = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
    return (np.bincount(rows, weights=x[var], minlength=ptr.size - 1).astype(np.int64) & 1).astype(
        np.uint8
    )


def test_lift_is_regular_and_free_of_four_cycles() -> None:
    ptr, var, s = small_code(1)
    z = s.z
    h = np.zeros((s.mb * z, (int(s.evb.max()) + 1) * z), dtype=np.int64)
    h[np.repeat(np.arange(ptr.size - 1), np.diff(ptr)), var] = 1
    # every base edge is a permutation: each of its Z checks meets one variable of the block
    for cb in range(s.mb):
        block = h[cb * z : (cb + 1) * z]
        assert block.sum(axis=0).max() == 1  # the Z checks of a base row share no variable
        np.testing.assert_array_equal(block.sum(axis=1), np.diff(s.row_ptr)[cb])
    col = h.sum(axis=0).reshape(-1, z)
    assert np.all(col == col[:, :1])  # the Z columns of a block have the block's degree
    overlap = h.T @ h
    np.fill_diagonal(overlap, 0)
    assert overlap.max() <= 1  # no 4-cycle: two variables share at most one check
    again = small_code(1)
    np.testing.assert_array_equal(again[1], var)


def test_structure_is_read_back_exactly_and_a_non_lift_raises() -> None:
    ptr, var, s = small_code(2)
    n = (int(s.evb.max()) + 1) * s.z
    back = qc_structure(ptr, var, s.z, n)
    for a, b in ((back.row_ptr, s.row_ptr), (back.evb, s.evb), (back.esh, s.esh)):
        np.testing.assert_array_equal(a, b)
    _, var2 = expand(back)
    np.testing.assert_array_equal(var2, var)
    broken = var.copy()
    broken[int(ptr[5])] = (broken[int(ptr[5])] + 1) % n  # one entry moved in lane 5
    with pytest.raises(ReconciliationError, match="not a 16-lift"):
        qc_structure(ptr, np.sort(broken), s.z, n)
    with pytest.raises(ReconciliationError):
        qc_structure(ptr, var, 7, n)


def test_lift_size_and_its_bounds() -> None:
    assert lift_size(1_000_000) == 512
    assert lift_size(100_000) == 64
    assert lift_size(QC_MIN_KEY_BITS) == 64
    with pytest.raises(ReconciliationError, match="at least"):
        lift_size(QC_MIN_KEY_BITS - 1)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), q=st.floats(0.02, 0.12))
def test_numba_kernel_equals_numpy_reference_bit_for_bit(seed: int, q: float) -> None:
    ptr, var, s = small_code(seed % 1000)
    rng = np.random.default_rng(seed)
    nb = int(s.evb.max()) + 1
    x = rng.integers(0, 2, nb * s.z).astype(np.uint8)
    y = x ^ (rng.random(x.size) < q)
    syn = syndrome(ptr, var, x).reshape(s.mb, s.z).astype(np.int32)
    llr = np.where(y == 0, bsc_llr(q), -bsc_llr(q))
    llr[rng.random(x.size) < 0.05] = 0.0  # punctured
    known = rng.random(x.size) < 0.05
    llr[known] = KNOWN_LLR * (1.0 - 2.0 * rng.integers(0, 2, int(known.sum())))  # right or wrong
    p0 = ratios(llr).reshape(nb, s.z)
    caps = message_caps(s, bsc_llr(q))
    runs = []
    for kernel in (qc_layered_numba, qc_layered_numpy):
        p, msg = p0.copy(), np.zeros((s.evb.size, s.z), np.float32)
        out = kernel(s, syn, p, msg, 25, 6, caps)
        runs.append((out, p, msg))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    # known symbols (at the ratio clip) keep their value; free ones never reach the clip
    p = runs[0][1].ravel()
    np.testing.assert_array_equal(p[known], p0.ravel()[known])
    assert np.all((p[~known] < 1e30) & (p[~known] > 1e-30))


def test_message_caps_keep_free_posteriors_below_the_clip() -> None:
    _, _, s = small_code(5)
    caps = message_caps(s, 6.9)
    degree = np.bincount(s.evb)[s.evb]
    llr = np.log1p(caps.astype(np.float64)) - np.log1p(-caps.astype(np.float64))
    assert np.all(llr <= np.minimum(14.57, (68 - 6.9) / degree))
    per_column = np.bincount(s.evb, weights=llr)
    assert per_column.max() + 6.9 <= 68.0 + 1e-9
    assert caps[degree == 2].max() == np.float32(1 - 2**-20)  # low degrees keep the full cap
    with pytest.raises(ReconciliationError):
        message_caps(s, 70.0)


def test_decoder_decodes_keeps_llrs_and_recovers_priors() -> None:
    ptr, var, s = small_code(3, nb=96, mb=24, z=32)
    rng = np.random.default_rng(3)
    n = 96 * 32
    x = rng.integers(0, 2, n).astype(np.uint8)
    q = 0.015  # rate 3/4, degrees 2–4: f = 2.2, decodes
    y = x ^ (rng.random(n) < q)
    prior = np.where(y == 0, bsc_llr(q), -bsc_llr(q)).astype(np.float32)
    prior[:10] = KNOWN_LLR * (1 - 2 * x[:10].astype(np.float32))
    dec = QcDecoder(s, ptr, var, syndrome(ptr, var, x), prior)
    assert dec.run(100, 20)
    np.testing.assert_array_equal(dec.hard(), x)
    assert dec.unsatisfied().size == 0
    # below the clip the LLR view holds exactly: posterior = prior + the messages into it
    edge_var = (s.evb[:, None] * s.z + (np.arange(s.z)[None, :] + s.esh[:, None]) % s.z).ravel()
    into = np.bincount(edge_var, weights=dec.r.ravel().astype(np.float64), minlength=n)
    free = np.abs(prior) < KNOWN_LLR / 2
    np.testing.assert_allclose((dec.post - into)[free], prior[free], atol=1e-3)
    assert np.all(np.sign(dec.post[:10]) == np.sign(prior[:10]))  # known symbols stay known
    assert np.all(np.abs(dec.post[:10]) > KNOWN_LLR / 2)
    dec.set_known(np.array([20, 21]), x[[20, 21]])
    assert np.all(np.abs(dec._priors()[[20, 21]]) == KNOWN_LLR)
    dec.restart()
    want = prior.copy()
    want[[20, 21]] = KNOWN_LLR * (1 - 2 * x[[20, 21]].astype(np.float32))
    np.testing.assert_array_equal(dec.post, want)
    assert np.all(dec.r == 0)
    assert dec.run(100, 20)  # and decodes again from the priors
    np.testing.assert_array_equal(dec.hard(), x)


def test_decoder_numpy_backend_gives_the_same_state() -> None:
    ptr, var, s = small_code(4, nb=64, mb=16, z=16)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2, 64 * 16).astype(np.uint8)
    y = x ^ (rng.random(x.size) < 0.04)
    prior = np.where(y == 0, bsc_llr(0.04), -bsc_llr(0.04)).astype(np.float32)
    decs = [
        QcDecoder(s, ptr, var, syndrome(ptr, var, x), prior, backend=b) for b in ("numba", "numpy")
    ]
    oks = [d.run(40, 10) for d in decs]
    assert oks[0] == oks[1] and decs[0].iterations == decs[1].iterations
    np.testing.assert_array_equal(decs[0].post, decs[1].post)
    with pytest.raises(ReconciliationError):
        QcDecoder(s, ptr, var, syndrome(ptr, var, x)[:-1], prior)
    with pytest.raises(ReconciliationError):
        QcDecoder(s, ptr, var, syndrome(ptr, var, x), prior, backend="cuda")  # type: ignore[arg-type]


def test_qc_codes_are_named_built_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIQKD_LDPC_CACHE_DIR", str(tmp_path))
    k = 38
    code = build_code.__wrapped__(N_KEY, k, 5, "qc")
    z, mb, nb = qc_dimensions(N_KEY, k)
    assert (code.lift, code.m, code.n, code.family) == (z, mb * z, nb * z, "qc")
    assert code.m >= ladder(N_KEY, k)[0] and code.n_special == nb * z - N_KEY
    assert code.n_puncturable >= 0.9 * ladder(N_KEY, k)[1]
    name = code.code_id(17)
    assert name.startswith("qc-bsc26j-v2:") and parse_code_id(name) == (N_KEY, k, 5, 17, "qc")
    [path] = list(tmp_path.iterdir())
    again = build_code.__wrapped__(N_KEY, k, 5, "qc")  # from disk, checked
    np.testing.assert_array_equal(again.check_var, code.check_var)
    assert again.lift == z
    path.write_bytes(b"garbage")
    np.testing.assert_array_equal(build_code.__wrapped__(N_KEY, k, 5, "qc").specials, code.specials)
    assert not np.array_equal(
        build_code.__wrapped__(N_KEY, k, 5).check_var[:50], code.check_var[:50]
    )
    with pytest.raises(ReconciliationError, match="65536"):
        build_code(QC_MIN_KEY_BITS - 1, k, 5, "qc")
    with pytest.raises(ReconciliationError, match="family"):
        build_code(N_KEY, k, 5, "ldpc")  # type: ignore[arg-type]
    with pytest.raises(ReconciliationError):
        parse_code_id(f"qc-bsc26j-v2:n={QC_MIN_KEY_BITS - 1}:k=3:seed=0:p=0")


@pytest.mark.parametrize(("qber", "start"), [(0.02, "fast"), (0.05, "fast"), (0.03, "efficient")])
def test_protocol_with_qc_codes_reconciles_and_counts_every_bit(
    qber: float, start: LdpcStart
) -> None:
    rng = np.random.default_rng(int(qber * 1000))
    alice_key = rng.integers(0, 2, N_KEY, dtype=np.uint8)
    bob_key = alice_key ^ (rng.random(N_KEY) < qber).astype(np.uint8)
    alice = LdpcAlice(alice_key, qber, code_seed=2, family="qc", start=start)
    bob = LdpcBob(bob_key, qber)
    ledger = LeakLedger()
    run = run_ldpc(alice, bob, ledger, through_bytes=True)
    assert run.converged and alice.code.family == "qc"
    np.testing.assert_array_equal(bob.corrected_key, alice_key)
    assert ledger.leaked_bits == run.disclosed_bits
    # the first syndrome discloses f₀·n·h(Q) bits (the check tag on top), as with random codes
    first = alice.code.m - alice.punctured
    f0 = default_efficiency(N_KEY, qber, start)
    assert abs(first - math.ceil(f0 * N_KEY * binary_entropy(qber))) <= 1
    efficient = default_efficiency(N_KEY, qber)
    if start == "fast":
        assert f0 == max(FAST_START_EFFICIENCY, efficient + FAST_START_ABOVE)
    else:
        assert f0 == efficient < FAST_START_EFFICIENCY
    assert _structure(alice.code).z == alice.code.lift


def test_protocol_with_qc_codes_takes_blind_steps_and_the_numpy_backend_agrees() -> None:
    rng = np.random.default_rng(11)
    qber = 0.03
    alice_key = rng.integers(0, 2, N_KEY, dtype=np.uint8)
    bob_key = alice_key ^ (rng.random(N_KEY) < qber).astype(np.uint8)
    transcripts = []
    for backend in ("numba", "numpy"):
        alice = LdpcAlice(alice_key, qber, efficiency=1.0, code_seed=3, family="qc")
        bob = LdpcBob(bob_key, qber, backend=backend, reveal_fraction=0.03)
        ledger = LeakLedger()
        run = run_ldpc(alice, bob, ledger)
        assert run.converged and bob.reveal_rounds >= 1  # f₀ = 1 never decodes at once
        np.testing.assert_array_equal(bob.corrected_key, alice_key)
        transcripts.append((ledger.leaked_bits, run.rounds, bob.iterations))
    assert transcripts[0] == transcripts[1]
