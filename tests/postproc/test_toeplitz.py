"""Toeplitz hashing (privacy amplification): known answers, properties, exactness, peers."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from diqkd.errors import DiqkdError
from diqkd.postproc import _fftconv, toeplitz
from diqkd.postproc._fftconv import (
    Backend,
    fast_length,
    fft_error_bound,
    pyfftw_available,
    round_parity_xor,
    round_parity_xor_numpy,
)
from diqkd.postproc.toeplitz import (
    ToeplitzHasher,
    draw_seed,
    plan_tiles,
    privacy_amplify,
    seed_length,
    toeplitz_hash,
    toeplitz_matrix,
)

_REPO = Path(__file__).resolve().parents[2]
VECTOR_DIRS = (_REPO / "tests" / "data" / "vectors", _REPO.parent / "shared" / "vectors")


def vector_file(name: str) -> Path:
    """A known-answer file from the repository copy or the shared folder; never skipped."""
    for folder in VECTOR_DIRS:
        if (folder / name).is_file():
            return folder / name
    pytest.fail(f"known-answer file {name} not found in {[str(d) for d in VECTOR_DIRS]}")


BACKENDS: list[Backend] = ["scipy"]
if pyfftw_available():
    BACKENDS.append("pyfftw")


def _bits(rng: np.random.Generator, n: int) -> NDArray[np.uint8]:
    return rng.integers(0, 2, n, dtype=np.uint8)


def _direct(x: NDArray[np.uint8], s: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Direct (non-FFT) reference: the 'valid' linear convolution mod 2."""
    return (np.convolve(s.astype(np.int64), x.astype(np.int64), mode="valid") % 2).astype(np.uint8)


def _direct_rows(x: NDArray[np.uint8], s: NDArray[np.uint8], rows: NDArray[np.intp]) -> list[int]:
    """Rows i of T·x computed one by one: y_i = ⊕_j s[i − j + n − 1] x_j = ⊕ s[i : i+n][::-1]·x."""
    n = x.shape[0]
    xi = x.astype(np.int32)
    return [int(np.dot(s[i : i + n][::-1].astype(np.int32), xi) & 1) for i in rows]


# --------------------------------------------------------------------------- known answers


def test_rss_known_answers() -> None:
    """Receive Side Scaling Toeplitz hash (Microsoft / Intel 82599 verification table).

    The vector file defines ``y_r = ⊕_i key_bit[i + r] · input_bit[i]`` with bits taken
    MSB-first within bytes and the output read MSB-first (``r = 0`` is the MSB of the 32-bit
    result). That matrix ``K[r, i] = key[i + r]`` is constant along anti-diagonals (a Hankel
    matrix in the input's order). Ours is ``T[r, j] = s[r − j + n − 1]``; substituting
    ``j = n − 1 − i`` gives ``T[r, n − 1 − i] = s[r + i]``, so with ``s = key[: n + 31]`` and the
    input bits *reversed*, ``T · x[::-1] = K · x``:
    ``RSS(key, x) = toeplitz_hash(x[::-1], key[: n + m − 1], m)``, output packed MSB-first.
    """
    data = json.loads(vector_file("toeplitz_rss_vectors.json").read_text())
    key = np.unpackbits(np.frombuffer(bytes.fromhex(data["key_hex"]), dtype=np.uint8))
    assert len(data["vectors"]) == 10
    for vec in data["vectors"]:
        x = np.unpackbits(np.frombuffer(bytes.fromhex(vec["input_hex"]), dtype=np.uint8))
        n, m = x.shape[0], vec["output_bits"]
        for backend in BACKENDS:
            y = toeplitz_hash(x[::-1].copy(), key[: n + m - 1].copy(), m, backend=backend)
            assert np.packbits(y).tobytes().hex() == vec["expected_hex"], vec["note"]
        # the same through the explicit matrix
        y_mat = (toeplitz_matrix(key[: n + m - 1].copy(), n, m).astype(np.int64) @ x[::-1]) % 2
        assert np.packbits(y_mat.astype(np.uint8)).tobytes().hex() == vec["expected_hex"]


def test_matrix_convention() -> None:
    """T[i, j] = s[i − j + n − 1]: first column s[n−1 … n+m−2], first row s[n−1], …, s[0]."""
    n, m = 5, 3
    s = np.arange(n + m - 1) % 2  # values only matter as positions below
    s_idx = np.arange(n + m - 1)
    T = toeplitz_matrix((s_idx % 2).astype(np.uint8), n, m)
    expected_idx = np.array([[i - j + n - 1 for j in range(n)] for i in range(m)])
    assert np.array_equal(T, s[expected_idx].astype(np.uint8))
    assert np.array_equal(expected_idx[:, 0], np.arange(n - 1, n + m - 1))
    assert np.array_equal(expected_idx[0], np.arange(n - 1, -1, -1))


# --------------------------------------------------------------------------- properties


@given(
    n=st.integers(1, 200),
    m_frac=st.floats(0.0, 1.0),
    cap=st.sampled_from([16, 17, 40, 128, 2**25]),
    seed=st.integers(0, 2**32 - 1),
    backend=st.sampled_from(BACKENDS),
)
def test_agrees_with_direct_product(
    n: int, m_frac: float, cap: int, seed: int, backend: Backend
) -> None:
    """FFT hash (single shot or tiled) == the explicit GF(2) matrix product == np.convolve."""
    m = max(1, min(n, round(m_frac * n)))
    rng = np.random.default_rng(seed)
    x, s = _bits(rng, n), _bits(rng, n + m - 1)
    y = toeplitz_hash(x, s, m, backend=backend, max_fft_len=cap)
    by_matrix = ((toeplitz_matrix(s, n, m).astype(np.int64) @ x) % 2).astype(np.uint8)
    assert y.dtype == np.uint8 and y.shape == (m,)
    assert np.array_equal(y, by_matrix)
    assert np.array_equal(y, _direct(x, s))


@given(n=st.integers(1, 150), seed=st.integers(0, 2**32 - 1), cap=st.sampled_from([16, 2**25]))
def test_bilinear(n: int, seed: int, cap: int) -> None:
    """T_s(x ⊕ x') = T_s x ⊕ T_s x' and T_{s ⊕ s'} x = T_s x ⊕ T_{s'} x."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, n + 1))
    x1, x2 = _bits(rng, n), _bits(rng, n)
    s1, s2 = _bits(rng, n + m - 1), _bits(rng, n + m - 1)

    def h(x: NDArray[np.uint8], s: NDArray[np.uint8]) -> NDArray[np.uint8]:
        return toeplitz_hash(x, s, m, max_fft_len=cap)

    assert np.array_equal(h(x1 ^ x2, s1), h(x1, s1) ^ h(x2, s1))
    assert np.array_equal(h(x1, s1 ^ s2), h(x1, s1) ^ h(x1, s2))
    assert not h(np.zeros(n, np.uint8), s1).any()


@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=50),
    scale=st.sampled_from([1.0, 0.5, 1 / 3]),
)
def test_rounding_kernel_matches_numpy(values: list[float], scale: float) -> None:
    """The numba rounding/parity kernel equals its pure-numpy reference."""
    y = np.array(values, dtype=np.float64)
    start = np.random.default_rng(len(values)).integers(0, 2, y.size, dtype=np.uint8)
    out_a, out_b = start.copy(), start.copy()
    assert round_parity_xor(y, scale, out_a) == pytest.approx(
        round_parity_xor_numpy(y, scale, out_b), abs=0
    )
    assert np.array_equal(out_a, out_b)


def test_rounding_kernel_flags_nan_and_huge() -> None:
    out = np.zeros(3, dtype=np.uint8)
    assert round_parity_xor(np.array([1.0, np.nan, 2.0]), 1.0, out) == np.inf
    assert round_parity_xor(np.array([1e17]), 1.0, np.zeros(1, np.uint8)) == np.inf
    assert round_parity_xor_numpy(np.array([np.nan]), 1.0, np.zeros(1, np.uint8)) == np.inf


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_at_two_million_bits(backend: Backend) -> None:
    """n = 2·10⁶, m = n/4: single-shot FFT (F ≈ 2.5·10⁶) == tiled FFT (F = 2¹⁸) == direct rows.

    Two very different transform lengths agree on every bit, and 64 random rows agree with a
    direct dot product. (The 10⁸-bit check lives in ``benchmarks/bench_pa.py --large``.)
    """
    rng = np.random.default_rng(20261127)
    n = 2_000_000
    m = n // 4
    x, s = _bits(rng, n), _bits(rng, n + m - 1)
    single = toeplitz_hash(x, s, m, backend=backend)
    tiled = toeplitz_hash(x, s, m, backend=backend, max_fft_len=2**18)
    assert plan_tiles(n, m, 2**25).tiles == 1 and plan_tiles(n, m, 2**18).tiles > 10
    assert np.array_equal(single, tiled)
    rows = np.sort(rng.choice(m, 64, replace=False))
    rows[0], rows[-1] = 0, m - 1
    assert [int(v) for v in single[rows]] == _direct_rows(x, s, rows)


def test_backends_agree() -> None:
    if len(BACKENDS) < 2:
        pytest.skip("pyFFTW not installed")
    rng = np.random.default_rng(5)
    n, m = 300_001, 123_457
    x, s = _bits(rng, n), _bits(rng, n + m - 1)
    assert np.array_equal(
        toeplitz_hash(x, s, m, backend="pyfftw", threads=2),
        toeplitz_hash(x, s, m, backend="scipy", threads=1),
    )


def test_guard_raises_on_inexact_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rounding residual ≥ 0.25 (a misbehaving FFT) raises instead of returning bits."""

    def bad(y: NDArray[np.float64], scale: float, out: NDArray[np.uint8]) -> float:
        return 0.3

    monkeypatch.setattr(_fftconv, "round_parity_xor", bad)
    rng = np.random.default_rng(1)
    x, s = _bits(rng, 64), _bits(rng, 64 + 31)
    for backend in BACKENDS:
        with pytest.raises(DiqkdError, match="not exact"):
            toeplitz_hash(x, s, 32, backend=backend)


def test_error_bound() -> None:
    """The a priori bound is far below 1/2 at every size we use, grows with F, and is enforced."""
    assert fft_error_bound(2**25) < 1e-4
    assert fft_error_bound(2**28) < 1e-3
    assert fft_error_bound(2**20) < fft_error_bound(2**25)
    assert plan_tiles(10**8, 10**8 // 4, 2**25).error_bound < 1e-4
    with pytest.raises(DiqkdError, match="too long"):
        fast_length(2**40)
    with pytest.raises(DiqkdError):
        fft_error_bound(0)


def test_tile_plan_respects_the_cap() -> None:
    plan = plan_tiles(10**8, 25 * 10**6, 2**25)
    assert plan.fft_len <= 2**25
    assert plan.out_block + plan.in_block - 1 <= plan.fft_len
    assert plan.tiles == -(-(25 * 10**6) // plan.out_block) * -(-(10**8) // plan.in_block)
    assert plan_tiles(10**7, 10**7 // 4, 2**25).tiles == 1


# --------------------------------------------------------------------------- peer


def test_agrees_with_randextract() -> None:
    """randextract's ToeplitzHashing (default seed mode, M[i, j] = seed[i − j], negative
    indices wrapping) is our hash with ``seed_randextract = numpy.roll(s, −(n − 1))``."""
    randextract = pytest.importorskip("randextract")
    rng = np.random.default_rng(11)
    for n, m in [(1, 1), (17, 5), (1000, 1000), (4096, 1000), (50_000, 12_345)]:
        x, s = _bits(rng, n), _bits(rng, n + m - 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ext = randextract.ToeplitzHashing(n, m)
            theirs = np.asarray(ext.extract(x, np.roll(s, -(n - 1)))).astype(np.uint8)
        assert np.array_equal(toeplitz_hash(x, s, m), theirs)


# --------------------------------------------------------------------------- recipe & API


def test_same_seed_same_output_and_recipe_round_trip() -> None:
    rng = np.random.default_rng(2)
    n, m = 5000, 1200
    key = _bits(rng, n)
    alice_key, seed = privacy_amplify(key, m)
    assert seed.shape == (seed_length(n, m),) and seed.dtype == np.uint8
    bob_key, bob_seed = privacy_amplify(key.copy(), m, seed_bits=seed)
    assert bob_seed is seed
    assert alice_key.shape == (m,) and np.array_equal(alice_key, bob_key)
    assert np.array_equal(toeplitz_hash(key, seed, m), alice_key)
    # a fresh seed each time (equal with probability 2^-(n+m-1))
    _, seed2 = privacy_amplify(key, m)
    assert not np.array_equal(seed, seed2)


def test_seed_comes_from_the_os_csprng(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_secret_bytes(k: int) -> bytes:
        calls.append(k)
        return bytes([0b10100000] * k)

    monkeypatch.setattr(toeplitz, "secret_bytes", fake_secret_bytes)
    seed = draw_seed(4, 2)  # 5 bits
    assert calls == [1]
    assert seed.tolist() == [1, 0, 1, 0, 0]


def test_bool_input_accepted() -> None:
    rng = np.random.default_rng(3)
    x, s = _bits(rng, 100), _bits(rng, 149)
    assert np.array_equal(toeplitz_hash(x.astype(bool), s.astype(bool), 50), _direct(x, s))


@pytest.mark.parametrize("m", [0, -1, 101])
def test_output_length_checked(m: int) -> None:
    key = np.zeros(100, dtype=np.uint8)
    with pytest.raises(DiqkdError, match="output_bits"):
        privacy_amplify(key, m)
    with pytest.raises(DiqkdError, match="output_bits"):
        toeplitz_hash(key, np.zeros(200, np.uint8), m)


def test_malformed_inputs_rejected() -> None:
    x = np.zeros(10, dtype=np.uint8)
    s = np.zeros(14, dtype=np.uint8)
    with pytest.raises(DiqkdError, match="14 bits"):
        toeplitz_hash(x, s[:13], 5)
    with pytest.raises(DiqkdError, match="only 0 and 1"):
        toeplitz_hash(np.full(10, 2, np.uint8), s, 5)
    with pytest.raises(DiqkdError, match="dtype"):
        toeplitz_hash(x.astype(np.int64), s, 5)
    with pytest.raises(DiqkdError, match="one-dimensional"):
        toeplitz_hash(x.reshape(2, 5), s, 5)
    with pytest.raises(DiqkdError, match="numpy array"):
        toeplitz_hash([0, 1], s, 1)  # type: ignore[arg-type]
    with pytest.raises(DiqkdError, match="bool"):
        toeplitz_hash(x, s, True)
    with pytest.raises(DiqkdError, match="at least one bit"):
        toeplitz_hash(np.zeros(0, np.uint8), s, 1)
    with pytest.raises(DiqkdError, match="max_fft_len"):
        toeplitz_hash(x, s, 5, max_fft_len=4)
    with pytest.raises(DiqkdError, match="backend"):
        toeplitz_hash(x, s, 5, backend="cuda")  # type: ignore[arg-type]
    with pytest.raises(DiqkdError, match="threads"):
        toeplitz_hash(x, s, 5, threads=0)


def test_hasher_reuse_close_and_repr() -> None:
    rng = np.random.default_rng(4)
    n, m = 1000, 300
    with ToeplitzHasher(n, m, max_fft_len=256) as hasher:
        assert hasher.plan.tiles > 1 and hasher.seed_bits == n + m - 1
        for _ in range(3):
            x, s = _bits(rng, n), _bits(rng, n + m - 1)
            assert np.array_equal(hasher.hash(x, s), _direct(x, s))
        text = repr(hasher)
        assert "ToeplitzHasher(input_bits=1000" in text and hasher.backend in text
    with pytest.raises(DiqkdError, match="closed"):
        hasher.hash(x, s)
    hasher.close()  # idempotent
    assert pickle.loads(pickle.dumps(plan_tiles(n, m, 256))) == plan_tiles(n, m, 256)
