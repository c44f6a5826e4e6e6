"""Benchmark: diqkd LDPC reconciliation versus the ``ldpc`` package's BP decoder, same run.

Per frame length n and QBER Q (frames with i.i.d. Bernoulli(Q) errors; the true Q is the
estimate, as in the literature's efficiency figures):

* **f** ``= leaked_bits / (n·h(Q))``, mean over frames, from the ledger: the syndrome
  (``M − p`` bits) plus every blind reveal (:func:`diqkd.postproc.ldpc.run_ldpc`);
* **FER one-shot**: frames whose first decoding (before any blind step) fails or is wrong;
  **FER final**: frames unconverged or wrong at the end (what verification would reject),
  with its one-sided 95 % Clopper–Pearson upper bound (0 failures in N frames bound the FER
  by ≈ 3/N: a 10⁻³ claim needs ≳ 3000 frames); each final failure is reported on stderr
  (frame index, and whether Bob converged to a wrong word or not at all; ``failed_frames``
  in ``--json``); so is each *tail frame*, one that ended more than
  :data:`TAIL_ABOVE_START` above the first syndrome's f (``tail_frames``);
* **checks**: words that satisfied the syndrome but failed Alice's decoding check
  (:data:`~diqkd.postproc.ldpc.CHECK_MAX_SHARE`), all frames together; Bob searched on from
  each (without the check they would have been final failures, or blind steps after a tie);
* **throughput**: Mbit of key per second of Bob's decoding over all his attempts (the first
  syndrome and every blind step; one thread, JIT and code construction excluded), and of the
  whole protocol (both parties, every message);
* **peer**: ``ldpc`` (Roffe et al., PyPI ``ldpc`` ≥ 2, C++) ``BpDecoder`` with
  ``bp_method="product_sum"``, ``schedule="serial"`` (layered, like ours), the same mother code
  ``H``, the same frames, the same first syndrome and the same iteration cap; per-bit channel
  probabilities ``Q`` (key), ``0.5`` (punctured), ``10⁻⁹`` (shortened); it decodes the error
  pattern from ``H·y ⊕ s``. Its FER is one-shot (it has no blind mode). ``pip install ldpc``
  (benchmark only, not a dependency); without it the peer columns are empty.

``--family qc`` runs the quasi-cyclic codes (:mod:`diqkd.postproc._ldpc_qc`) instead of the
random ones; the peer then decodes the QC code. ``--start fast`` moves the first syndrome to
the throughput point ``f₀ ≥ 1.15`` (:func:`diqkd.postproc.ldpc.default_efficiency`).

Run (from the repository root; codes are cached on disk under ``--cache-dir``)::

    python benchmarks/bench_ldpc.py --n 100000 --qber 0.02 0.03 0.05 --frames 20
    python benchmarks/bench_ldpc.py --n 1000000 --qber 0.01 0.02 0.03 0.05 0.08 0.1 --frames 5
    python benchmarks/bench_ldpc.py --n 1000000 --qber 0.03 --frames 30 --peer-frames 1 \\
        --family qc --start fast
    python benchmarks/bench_ldpc.py --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from diqkd.postproc._ldpc_codes import (
    CACHE_ENV,
    CODE_FAMILIES,
    CodeFamily,
    build_code,
    family_format,
)
from diqkd.postproc._ldpc_kernels import KNOWN_LLR
from diqkd.postproc.ldpc import (
    LDPC_STARTS,
    LdpcAlice,
    LdpcBob,
    LdpcStart,
    _decoder,
    choose_code,
    default_efficiency,
)
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.messages import Done, RevealReply, RevealRequest
from diqkd.postproc.reconcile import binary_entropy

MAX_ITERATIONS = 150
#: A frame whose f exceeds the first syndrome's by more than this is reported (stderr,
#: ``tail_frames`` in ``--json``) with its index, so that it can be replayed.
TAIL_ABOVE_START = 0.1
#: Bob's stall rule (``LdpcBob(patience=…)``); ``--patience``.
PATIENCE = 12


def _peer(code: Any, probs: Any, max_iter: int) -> Any:
    try:
        import scipy.sparse as sp
        from ldpc import BpDecoder  # type: ignore[attr-defined]
    except ImportError:
        return None
    data = (np.ones(code.n_edges, np.uint8), code.check_var.copy(), code.check_ptr.copy())
    h = sp.csr_matrix(data, shape=(code.m, code.n))
    return BpDecoder(
        h,
        channel_probs=probs,
        max_iter=max_iter,
        bp_method="product_sum",
        schedule="serial",
        input_vector_type="syndrome",
    )


def run_frame(
    alice_key: Any,
    bob_key: Any,
    qber: float,
    f0: float | None,
    seed: int,
    reveal_fraction: float = 0.01,
    max_iterations: int = MAX_ITERATIONS,
    patience: int = PATIENCE,
    family: CodeFamily = "random",
    start: LdpcStart = "efficient",
) -> dict[str, Any]:
    """One protocol run; returns leak, outcomes, timings and what was revealed."""
    t_start = time.perf_counter()
    alice = LdpcAlice(alice_key, qber, efficiency=f0, code_seed=seed, family=family, start=start)
    bob = LdpcBob(
        bob_key, qber, max_iterations=max_iterations, patience=patience,
        reveal_fraction=reveal_fraction,
    )  # fmt: skip
    ledger = LeakLedger()
    reply: Any = alice.first_message()
    first = reply
    t_bob = 0.0
    idx: list[Any] = []
    vals: list[Any] = []
    while True:
        delivered = ledger.cross(reply)
        if isinstance(delivered, RevealReply):
            vals.append(delivered.bits)
        t0 = time.perf_counter()
        request = bob.handle(delivered)
        t_bob += time.perf_counter() - t0
        ledger.cross(request)
        if isinstance(request, RevealRequest):
            idx.append(request.indices)
        reply = alice.handle(request)
        if isinstance(request, Done):
            break
    t_total = time.perf_counter() - t_start
    ok = bob.converged and np.array_equal(bob.corrected_key, alice_key)
    return {
        "alice": alice,
        "first": first,
        "revealed_idx": np.concatenate(idx) if idx else np.zeros(0, np.int64),
        "revealed_val": np.concatenate(vals) if vals else np.zeros(0, np.uint8),
        "leak": ledger.leaked_bits,
        "first_ok": bob.converged_first and ok,
        "final_ok": ok,
        "converged": bob.converged,
        "reveal_rounds": bob.reveal_rounds,
        "t_bob": t_bob,
        "t_total": t_total,
        "iterations": bob.iterations,
        "wrong_words": bob.wrong_words,
    }


def frame_stream(n: int, qber: float, seed: int, frames: int) -> Iterator[tuple[int, Any, Any]]:
    """``(index, alice, bob)`` for frames ``0 … frames`` (frame 0 warms the JIT up): Alice's key
    uniform, Bob's with i.i.d. Bernoulli(Q) errors, a function of ``(seed, n, Q)`` alone, so
    that every run (and ``bench_ldpc_start.py``, ``fer_pool.py``) sees the same frames."""
    rng = np.random.default_rng([seed, n, int(qber * 1e6)])
    for frame in range(frames + 1):
        alice = rng.integers(0, 2, n, dtype=np.uint8)
        yield frame, alice, alice ^ (rng.random(n) < qber).astype(np.uint8)


def final_problem(res: dict[str, Any], bob_key: Any, qber: float) -> tuple[Any, ...]:
    """Bob's last decoding problem (syndrome and all reveals), for a one-shot comparison."""
    a: LdpcAlice = res["alice"]
    code = a.code
    keep = np.ones(code.m, bool)
    keep[code.anchors[: a.punctured]] = False
    full = np.zeros(code.m, np.uint8)
    full[keep] = res["first"].syndrome
    word = np.zeros(code.n, np.uint8)
    word[code.key_positions] = bob_key
    word[res["revealed_idx"]] = res["revealed_val"]
    probs = np.full(code.n, 1e-9)
    probs[code.key_positions] = qber
    probs[code.specials[: a.punctured]] = 0.5
    probs[res["revealed_idx"]] = 1e-9
    prior = ((1.0 - 2.0 * word) * np.log((1.0 - probs) / probs)).astype(np.float32)
    prior = np.clip(prior, -KNOWN_LLR, KNOWN_LLR)
    return code, full, word, probs, prior


def fer_upper(failures: int, frames: int, confidence: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound on the FER (Clopper, Pearson, Biometrika 26, 404
    (1934)): ``B⁻¹(confidence; k + 1, N − k)``; ``1 − 0.05^{1/N}`` (≈ 3/N) for no failure."""
    from scipy.stats import beta

    if failures >= frames:
        return 1.0
    return float(beta.ppf(confidence, failures + 1, frames - failures))


def bench(
    n: int,
    qber: float,
    frames: int,
    f0: float | None,
    seed: int,
    peer_frames: int,
    peer_iter: int,
    reveal_fraction: float = 0.01,
    max_iterations: int = MAX_ITERATIONS,
    patience: int = PATIENCE,
    progress: int = 0,
    family: CodeFamily = "random",
    start: LdpcStart = "efficient",
) -> dict[str, Any]:
    rung, _ = choose_code(n, qber, f0, start=start)
    t0 = time.perf_counter()
    build_code(n, rung, seed, family)
    t_build = time.perf_counter() - t0
    leaks, first_fail, final_fail, rounds, its, wrong_words = [], 0, 0, [], [], 0
    failed: list[dict[str, Any]] = []
    tails: list[dict[str, Any]] = []
    f_start = default_efficiency(n, qber, start) if f0 is None else f0
    h = binary_entropy(qber)
    t_bob = t_total = t_peer = t_ours_final = 0.0
    peer_fail = peer_done = its_peer = its_ours_final = 0
    for frame, alice, bob in frame_stream(n, qber, seed, frames):  # frame 0: JIT warm-up
        res = run_frame(
            alice, bob, qber, f0, seed, reveal_fraction, max_iterations, patience, family, start
        )
        a: LdpcAlice = res["alice"]
        if 0 < frame <= peer_frames and res["final_ok"]:
            code, full, word, probs, prior = final_problem(res, bob, qber)
            peer = _peer(code, probs, peer_iter)
            if peer is not None:
                dec = _decoder(code, full, prior, "numba")
                tp = time.perf_counter()
                dec.run(peer_iter, peer_iter)
                t_ours_final += time.perf_counter() - tp
                its_ours_final += dec.iterations
                target = code.syndrome(word) ^ full
                tp = time.perf_counter()
                err = peer.decode(target)
                t_peer += time.perf_counter() - tp
                its_peer += int(peer.iter)
                est = (word ^ err.astype(np.uint8))[code.key_positions]
                peer_fail += not (bool(peer.converge) and np.array_equal(est, alice))
                peer_done += 1
        if frame == 0:
            continue
        leaks.append(res["leak"])
        first_fail += not res["first_ok"]
        final_fail += not res["final_ok"]
        if not res["final_ok"]:  # say which frame and how, so that it can be replayed
            how = "converged to a wrong word" if res["converged"] else "did not converge"
            failed.append({"frame": frame, "failure": how})
            print(f"n={n} Q={qber} seed={seed}: frame {frame} {how}", file=sys.stderr, flush=True)
        f_frame = res["leak"] / (n * h)
        if f_frame > f_start + TAIL_ABOVE_START:  # a tail frame: say which, for a replay
            tails.append({"frame": frame, "f": f_frame, "blind_steps": res["reveal_rounds"]})
            print(
                f"n={n} Q={qber} seed={seed}: frame {frame} is a tail frame: f = {f_frame:.4f}"
                f" after {res['reveal_rounds']} blind steps",
                file=sys.stderr,
                flush=True,
            )
        rounds.append(res["reveal_rounds"])
        wrong_words += res["wrong_words"]
        its.append(res["iterations"])
        t_bob += res["t_bob"]
        t_total += res["t_total"]
        if progress and frame % progress == 0 and frame < frames:  # a long cell may be cut
            f_now = np.array(leaks, dtype=float) / (n * h)
            print(
                f"n={n} Q={qber} seed={seed}: {frame}/{frames} frames, f = {f_now.mean():.4f}"
                f" (max {f_now.max():.4f}), {final_fail} final failures,"
                f" {wrong_words} words refused by the check",
                file=sys.stderr,
                flush=True,
            )
    code = a.code
    f = np.array(leaks, dtype=float) / (n * h)
    ours_final = n * peer_done / t_ours_final / 1e6 if peer_done else None
    peer_mbps = n * peer_done / t_peer / 1e6 if peer_done else None
    return {
        "n": n,
        "qber": qber,
        "frames": frames,
        "rung": rung,
        "code_digest": code.digest,
        "table_rate": code.rate,
        "punctured": a.punctured,
        "f0": f_start,
        "f_mean": float(f.mean()),
        "f_sem": float(f.std(ddof=1) / math.sqrt(frames)) if frames > 1 else math.nan,
        "f_max": float(f.max()),
        "fer_one_shot": first_fail / frames,
        "fer_final": final_fail / frames,
        "fer_final_upper95": fer_upper(final_fail, frames),
        "failed_frames": failed,
        "tail_frames": tails,
        "check_refused_words": wrong_words,
        "blind_steps_mean": float(np.mean(rounds)),
        "iterations_mean": float(np.mean(its)),
        "ours_bob_mbit_s": n * frames / t_bob / 1e6,
        "ours_protocol_mbit_s": n * frames / t_total / 1e6,
        "peer_frames": peer_done,
        "ours_final_mbit_s": ours_final,
        "peer_fer_final_problem": peer_fail / peer_done if peer_done else None,
        "peer_mbit_s": peer_mbps,
        "ratio": ours_final / peer_mbps if peer_mbps and ours_final else None,
        "peer_max_iter": peer_iter,
        "ours_final_iterations": its_ours_final / peer_done if peer_done else None,
        "peer_iterations": its_peer / peer_done if peer_done else None,
        "ratio_per_iteration": (
            (t_peer / its_peer) / (t_ours_final / its_ours_final)
            if peer_done and its_peer and its_ours_final
            else None
        ),
        "build_s": t_build,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000])
    parser.add_argument("--qber", type=float, nargs="+", default=[0.02, 0.03, 0.05])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument(
        "--f0", type=float, default=None, help="default: default_efficiency(n, Q, start)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--family", choices=CODE_FAMILIES, default="random", help="code family")
    parser.add_argument(
        "--start", choices=LDPC_STARTS, default="efficient", help="operating point of f0"
    )
    parser.add_argument(
        "--cache-dir", default=os.environ.get(CACHE_ENV) or str(Path.home() / ".cache/diqkd/ldpc")
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--reveal-fraction", type=float, default=0.01, help="blind step, fraction of n·h(Q)"
    )
    parser.add_argument(
        "--peer-frames", type=int, default=1, help="frames the ldpc package decodes (0: none)"
    )
    parser.add_argument(
        "--peer-max-iter", type=int, default=MAX_ITERATIONS, help="iteration cap, both decoders"
    )
    parser.add_argument(
        "--max-iterations", type=int, default=MAX_ITERATIONS, help="Bob's cap per attempt"
    )
    parser.add_argument("--patience", type=int, default=PATIENCE, help="Bob's stall rule")
    parser.add_argument(
        "--progress", type=int, default=0, help="every N frames, the running f on stderr (0: off)"
    )
    args = parser.parse_args()
    prov = provenance(args.family)  # what decodes the frames: taken before the first frame
    os.environ[CACHE_ENV] = args.cache_dir
    head = (
        f"{'n':>8} {'QBER':>5} {'k':>3} {'R0':>4} {'p':>6} {'f':>6} {'±':>5} {'f_max':>6} "
        f"{'FER1':>5} {'FERfin':>6} {'≤(95%)':>7} {'chk':>3} {'steps':>5} {'iters':>5} "
        f"{'Bob Mb/s':>8} {'proto':>6} {'final':>6} {'peerFER':>7} {'peer Mb/s':>9} {'ratio':>6} "
        f"{'it o/p':>7} {'r/iter':>6} {'build s':>7}"
    )
    if not args.json:
        print(head, flush=True)
    rows = []
    for n in args.n:
        for q in args.qber:
            r = bench(
                n, q, args.frames, args.f0, args.seed, args.peer_frames, args.peer_max_iter,
                args.reveal_fraction, args.max_iterations, args.patience, args.progress,
                args.family, args.start,
            )  # fmt: skip
            rows.append(r)
            if args.json:
                continue
            peer = (
                f"{r['ours_final_mbit_s']:6.2f} {r['peer_fer_final_problem']:7.2f} "
                f"{r['peer_mbit_s']:9.4f} {r['ratio']:6.0f} "
                f"{r['ours_final_iterations']:3.0f}/{r['peer_iterations']:<3.0f} "
                f"{r['ratio_per_iteration']:6.0f}"
                if r["ratio"] is not None
                else f"{'-':>6} {'-':>7} {'-':>9} {'-':>6} {'-':>7} {'-':>6}"
            )
            print(
                f"{r['n']:8d} {r['qber']:5.3f} {r['rung']:3d} {r['table_rate']:4.2f} "
                f"{r['punctured']:6d} {r['f_mean']:6.3f} {r['f_sem']:5.3f} {r['f_max']:6.3f} "
                f"{r['fer_one_shot']:5.2f} {r['fer_final']:6.3f} {r['fer_final_upper95']:7.1e} "
                f"{r['check_refused_words']:3d} {r['blind_steps_mean']:5.1f} "
                f"{r['iterations_mean']:5.0f} {r['ours_bob_mbit_s']:8.2f} "
                f"{r['ours_protocol_mbit_s']:6.2f} {peer} {r['build_s']:7.1f}",
                flush=True,
            )
    if args.json:
        settings = {
            "f0": args.f0,
            "max_iterations": args.max_iterations,
            "patience": args.patience,
            "reveal_fraction": args.reveal_fraction,
            "seed": args.seed,
            "start": args.start,
        }
        print(json.dumps(settings | prov | {"rows": rows}, indent=2))


def provenance(family: CodeFamily = "random") -> dict[str, Any]:
    """What the frames were decoded with, so that runs can be pooled (``fer_pool.py``): the
    code family and cache format, the wire version of the messages, and the git commit of
    the working tree (``dirty`` when it had uncommitted changes), when there is one."""
    from diqkd.postproc.messages import WIRE_VERSION

    commit: str | None = None
    dirty: bool | None = None
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "src"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        dirty = bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "code_family": family_format(family),
        "wire_version": WIRE_VERSION,
        "git_commit": commit,
        "git_dirty": dirty,
    }


if __name__ == "__main__":
    main()
