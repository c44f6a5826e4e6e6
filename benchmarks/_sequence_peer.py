"""SeQUeNCe peer for ``bench_sequence.py``: heralded atom–atom pairs from SeQUeNCe's own protocol.

This module runs in a Python environment where SeQUeNCe (PyPI package ``sequence``, tested with
0.8.5, the newest release that supports Python 3.11) is installed. It does not import diqkd, so
the benchmark can run it in a separate virtual environment (``DIQKD_PEER_PYTHON``)::

    python benchmarks/_sequence_peer.py --pairs 100 --distance-km 11 \\
        --params-json '{"memory_efficiency": 0.009, ...}'

prints one JSON line (the result of :func:`run_sequence_peer`).

Set-up (SeQUeNCe 0.8.5 classes)
-------------------------------
* ``Timeline`` (ket-vector formalism for Barrett–Kok, Bell-diagonal for single-heralded).
* Two end nodes (``sequence.topology.node.Node`` subclasses, as in SeQUeNCe's tutorial and its
  generation tests) holding one ``sequence.components.memory.Memory`` each, and a
  ``sequence.topology.node.BSMNode`` holding a ``SingleAtomBSM`` (Barrett–Kok) or a
  ``SingleHeraldedBSM`` with two ``Detector`` objects and the ``EntanglementGenerationB``
  protocol. The station sits at the midpoint: two ``QuantumChannel`` arms of half the length,
  plus ``ClassicalChannel`` links end–station (half length) and end–end (full length) whose
  delays are the pure fiber propagation delays (SeQUeNCe's default adds 10 µs per message).
* Each attempt is one pair of ``EntanglementGenerationA`` instances (created with
  ``EntanglementGenerationA.create``; ``BarretKokA`` by default, ``SingleHeraldedA`` on request),
  paired with ``set_others`` and started on both nodes. The protocol itself negotiates emission
  times (``NEGOTIATE``/``NEGOTIATE_ACK``), excites the memories, sends the photons through the
  fiber, and the station's ``EntanglementGenerationB`` reports clicks (``MEAS_RES``). When both
  nodes have reported ``ENTANGLED`` (a heralded pair) or ``RAW`` (failed attempt) the harness
  records the outcome, resets both memories and starts the next attempt at the same simulated
  time (no extra classical round trip is charged for the restart, which favours the peer).

Parameter mapping (keys of ``params``; SeQUeNCe argument and its unit)
-----------------------------------------------------------------------
* ``memory_efficiency`` → ``Memory(efficiency=)``: probability that an excitation puts a photon
  into the fiber (collection × frequency conversion), dimensionless.
* ``memory_fidelity`` → ``Memory(fidelity=)``: SeQUeNCe's *raw fidelity* of a generated pair.
* ``memory_frequency_hz`` → ``Memory(frequency=)``: maximum excitation rate, Hz (1 / local attempt
  time; SeQUeNCe adds the classical negotiation and herald latencies itself).
* ``coherence_time_s`` → ``Memory(coherence_time=)``, s (memory cut-off; decoherence rate
  1/T for the Bell-diagonal formalism).
* ``wavelength_nm`` → ``Memory(wavelength=)``, nm (bookkeeping only; loss is set explicitly).
* ``fiber_loss_db_per_km`` → ``QuantumChannel(attenuation=)`` in **dB/m** (divided by 1000).
* ``group_index`` → ``QuantumChannel(light_speed=)`` in m/ps: c / n / 1e12.
* ``detector_efficiency``, ``dark_count_rate_hz`` → ``Detector(efficiency=, dark_count=)``
  (dark counts in counts/s).
* ``time_resolution_s`` → ``Detector(time_resolution=)`` in ps; SeQUeNCe accepts a click within
  ± resolution/2 of the expected arrival, i.e. a detection window of this width.
* ``detector_count_rate_hz`` (optional) → ``Detector(count_rate=)``, Hz (SeQUeNCe default 25e6).
* ``protocol``: ``"barrett-kok"`` (default) or ``"single-heralded"``.
* ``seed`` (optional, default 1), ``max_wall_s`` (optional wall-clock budget, default 60 s).

Fidelity in SeQUeNCe 0.8.5
--------------------------
* Barrett–Kok (``BarretKokA``/``SingleAtomBSM``): after the second round the BSM draws the
  memories' joint state as the target Bell state with probability ``raw_fidelity`` and each
  other Bell state with ``(1 − raw_fidelity)/3`` (``_set_state_with_fidelity``), and the
  protocol assigns ``memory.fidelity = memory.raw_fidelity``. The *assigned* fidelity is
  therefore exactly the input, independent of distance, loss, dark counts and waiting time.
  We also report the *state* fidelity: the mean overlap of the simulated two-memory ket with
  the best fixed Bell state (≈ raw fidelity, lowered by dark-count false heralds).
* Single-heralded (``SingleHeraldedA``/``SingleHeraldedBSM``, Bell-diagonal formalism): the
  pair is created with fidelity ``raw_fidelity`` and depolarised (Pauli errors 1/3 each, rate
  1/coherence time) for the time between emission and herald; ``memory.fidelity`` is still set
  to the raw value, the state fidelity (``get_bds_fidelity``) carries the decay.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

__all__ = ["run_sequence_peer"]

_C_M_PER_S = 299_792_458.0
_PS_PER_S = 1e12

_DEFAULTS: dict[str, Any] = {
    "protocol": "barrett-kok",
    "memory_efficiency": 1.0,
    "memory_fidelity": 0.9,
    "memory_frequency_hz": 1e5,
    "coherence_time_s": -1.0,
    "wavelength_nm": 1315.0,
    "fiber_loss_db_per_km": 0.33,
    "group_index": 1.468,
    "detector_efficiency": 0.9,
    "dark_count_rate_hz": 0.0,
    "time_resolution_s": 5e-8,
    "detector_count_rate_hz": 25e6,
    "seed": 1,
    "max_wall_s": 60.0,
}


def _sequence_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sequence")
    except PackageNotFoundError:  # pragma: no cover - only when run from a source tree
        import sequence

        return str(getattr(sequence, "__version__", "unknown"))


def run_sequence_peer(n_pairs: int, distance_km: float, params: dict[str, Any]) -> dict[str, Any]:
    """Run SeQUeNCe's entanglement generation until ``n_pairs`` pairs are heralded.

    Stops early when ``params["max_wall_s"]`` of wall-clock time have passed; the wall time for
    ``n_pairs`` is then extrapolated linearly from the pairs actually heralded
    (``"extrapolated": true``, ``"measured_pairs"`` gives the measured number).
    """
    # SeQUeNCe is imported here so that importing this module never needs it.
    t_import = time.perf_counter()
    import numpy as np
    from sequence.components.memory import Memory
    from sequence.components.optical_channel import ClassicalChannel, QuantumChannel
    from sequence.constants import (
        BARRET_KOK,
        BELL_DIAGONAL_STATE_FORMALISM,
        KET_STATE_FORMALISM,
        SINGLE_HERALDED,
    )
    from sequence.entanglement_management.generation import (
        EntanglementGenerationA,
        EntanglementGenerationB,
    )
    from sequence.kernel.event import Event
    from sequence.kernel.process import Process
    from sequence.kernel.timeline import Timeline
    from sequence.topology.node import BSMNode, Node

    import_time_s = time.perf_counter() - t_import
    unknown = set(params) - set(_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown peer parameters: {sorted(unknown)}")
    p = {**_DEFAULTS, **params}
    if n_pairs < 1:
        raise ValueError("n_pairs must be >= 1")
    if not (math.isfinite(distance_km) and distance_km >= 0):
        raise ValueError("distance_km must be finite and >= 0")
    protocol = str(p["protocol"])
    if protocol == "barrett-kok":
        gen_type, encoding, formalism, bsm_class = (
            BARRET_KOK,
            "single_atom",
            KET_STATE_FORMALISM,
            "SingleAtomBSM",
        )
    elif protocol == "single-heralded":
        gen_type, encoding, formalism, bsm_class = (
            SINGLE_HERALDED,
            "single_heralded",
            BELL_DIAGONAL_STATE_FORMALISM,
            "SingleHeraldedBSM",
        )
    else:
        raise ValueError(f"protocol must be 'barrett-kok' or 'single-heralded', got {protocol!r}")
    bds = formalism == BELL_DIAGONAL_STATE_FORMALISM

    seed = int(p["seed"])
    Timeline.seed(seed)
    EntanglementGenerationA.set_global_type(gen_type)
    EntanglementGenerationB.set_global_type(gen_type)
    tl = Timeline(formalism=formalism)

    length_m = float(distance_km) * 1e3
    arm_m = 0.5 * length_m
    light_speed_m_per_ps = _C_M_PER_S / float(p["group_index"]) / _PS_PER_S
    attenuation_db_per_m = float(p["fiber_loss_db_per_km"]) / 1e3

    memory_kwargs: dict[str, Any] = {
        "fidelity": float(p["memory_fidelity"]),
        "frequency": float(p["memory_frequency_hz"]),
        "efficiency": float(p["memory_efficiency"]),
        "coherence_time": float(p["coherence_time_s"]),
        "wavelength": float(p["wavelength_nm"]),
    }
    if bds:
        memory_kwargs["decoherence_errors"] = [1 / 3, 1 / 3, 1 / 3]

    class Recorder:
        """Stands in for a node's resource manager: forwards protocol outcomes to the driver."""

        def __init__(self, node: EndNode) -> None:
            self.node = node

        def update(self, _protocol: Any, memory: Any, state: str) -> None:
            driver.report(self.node, memory, state)

    class EndNode(Node):
        """An end node with one emissive single-atom memory."""

        def __init__(self, name: str, node_seed: int) -> None:
            super().__init__(name, tl, seed=node_seed)
            self.memory = Memory(f"{name}.memory", tl, **memory_kwargs)
            self.memory.add_receiver(self)
            self.add_component(self.memory)
            self.resource_manager = Recorder(self)

        def init(self) -> None:
            self.memory.reset()

        def get(self, photon: Any, **kwargs: Any) -> None:
            self.send_qubit(kwargs["dst"], photon)

    bell = np.array(
        [[1, 0, 0, 1], [1, 0, 0, -1], [0, 1, 1, 0], [0, 1, -1, 0]], dtype=np.complex128
    ) / math.sqrt(2.0)

    class Driver:
        """Starts attempts back to back and records heralded pairs."""

        def __init__(self, a: EndNode, b: EndNode, middle: str) -> None:
            self.a, self.b, self.middle = a, b, middle
            self.attempts = 0
            self.pairs = 0
            self.pending: dict[str, str] = {}
            self.assigned_fidelity_sum = 0.0
            self.state_overlap_sum = np.zeros(4)
            self.wall_start = time.perf_counter()
            self.stopped_by_budget = False
            self.protocol_class = ""

        def start_attempt(self) -> None:
            self.attempts += 1
            self.pending = {}
            a, b, k = self.a, self.b, self.attempts
            pa = EntanglementGenerationA.create(a, f"{a.name}.eg{k}", self.middle, b.name, a.memory)
            pb = EntanglementGenerationA.create(b, f"{b.name}.eg{k}", self.middle, a.name, b.memory)
            a.protocols = [pa]
            b.protocols = [pb]
            pa.set_others(pb.name, b.name, [b.memory.name])
            pb.set_others(pa.name, a.name, [a.memory.name])
            self.protocol_class = type(pa).__name__
            pa.start()
            pb.start()

        def report(self, node: EndNode, memory: Any, state: str) -> None:
            self.pending[node.name] = state
            if len(self.pending) < 2:
                return
            if all(s == "ENTANGLED" for s in self.pending.values()):
                self.pairs += 1
                self.assigned_fidelity_sum += 0.5 * (
                    self.a.memory.fidelity + self.b.memory.fidelity
                )
                self.state_overlap_sum += self._bell_overlaps()
            self.a.memory.reset()
            self.b.memory.reset()
            self.a.protocols = []
            self.b.protocols = []
            if self.pairs >= n_pairs:
                tl.stop()
                return
            if time.perf_counter() - self.wall_start > float(p["max_wall_s"]):
                self.stopped_by_budget = True
                tl.stop()
                return
            tl.schedule(Event(tl.now(), Process(self, "start_attempt", [])))

        def _bell_overlaps(self) -> Any:
            qm = tl.quantum_manager
            ka, kb = self.a.memory.qstate_key, self.b.memory.qstate_key
            if bds:
                # Bell-diagonal elements in SeQUeNCe's I, Z, X, Y order:
                # overlaps with Φ+, Φ−, Ψ+, Ψ−.
                return np.asarray(qm.get(ka).state, dtype=float)
            sa = qm.get(ka)
            if kb in sa.keys:
                vec = np.asarray(sa.state, dtype=np.complex128)
            else:
                vec = np.kron(np.asarray(sa.state), np.asarray(qm.get(kb).state))
            # |<B|ψ>|² is the same for both qubit orders for all four Bell states.
            return np.abs(bell.conj() @ vec) ** 2

    a = EndNode("alice", seed + 11)
    b = EndNode("bob", seed + 22)
    detector = {
        "efficiency": float(p["detector_efficiency"]),
        "dark_count": float(p["dark_count_rate_hz"]),
        "count_rate": float(p["detector_count_rate_hz"]),
        "time_resolution": max(1, round(float(p["time_resolution_s"]) * _PS_PER_S)),
    }
    station = BSMNode(
        "station",
        tl,
        [a.name, b.name],
        seed=seed + 33,
        component_templates={
            "encoding_type": encoding,
            bsm_class: {"detectors": [dict(detector), dict(detector)]},
        },
    )
    station.protocols = [station.eg]

    for node in (a, b):
        qc = QuantumChannel(
            f"qc_{node.name}_station",
            tl,
            attenuation=attenuation_db_per_m,
            distance=arm_m,
            light_speed=light_speed_m_per_ps,
        )
        qc.set_ends(node, station.name)
    delays_ps = {
        frozenset((a.name, station.name)): arm_m / light_speed_m_per_ps,
        frozenset((b.name, station.name)): arm_m / light_speed_m_per_ps,
        frozenset((a.name, b.name)): length_m / light_speed_m_per_ps,
    }
    nodes = (a, b, station)
    for src in nodes:
        for dst in nodes:
            if src is dst:
                continue
            d = delays_ps[frozenset((src.name, dst.name))]
            cc = ClassicalChannel(
                f"cc_{src.name}_{dst.name}",
                tl,
                distance=d * light_speed_m_per_ps,
                delay=max(1, round(d)),
            )
            cc.set_ends(src, dst.name)

    driver = Driver(a, b, station.name)
    tl.init()
    wall0 = time.perf_counter()
    driver.wall_start = wall0
    driver.start_attempt()
    tl.run()
    wall = time.perf_counter() - wall0
    sim_s = tl.now() / _PS_PER_S

    pairs = driver.pairs
    attempts = driver.attempts
    # SeQUeNCe's component model gives, per attempt and ignoring dark counts, a herald
    # probability of ½·x_A·x_B with x = memory efficiency × arm transmission × detector
    # efficiency (both protocols: Barrett–Kok ½ x in round 1 then x in round 2).
    x_arm = (
        float(p["memory_efficiency"])
        * 10 ** (-float(p["fiber_loss_db_per_km"]) * 0.5 * float(distance_km) / 10)
        * float(p["detector_efficiency"])
    )
    p_model = 0.5 * x_arm * x_arm
    wall_per_attempt = wall / attempts
    result: dict[str, Any] = {
        "peer": "SeQUeNCe",
        "version": _sequence_version(),
        "protocol": protocol,
        "protocol_class": driver.protocol_class,
        "distance_km": float(distance_km),
        "pairs": int(n_pairs),
        "measured_pairs": pairs,
        "attempts": attempts,
        "measured_wall_time_s": wall,
        "import_time_s": import_time_s,
        "measured_simulated_time_s": sim_s,
        "events_executed": tl.run_counter,
        "wall_time_per_attempt_s": wall_per_attempt,
        "simulated_time_per_attempt_s": sim_s / attempts,
        "herald_probability_measured": pairs / attempts,
        "herald_probability_model": p_model,
        "stopped_by_wall_budget": driver.stopped_by_budget,
        "extrapolated": pairs < n_pairs,
        "params": p,
    }
    if pairs > 0:
        overlaps = driver.state_overlap_sum / pairs
        result["mean_fidelity"] = driver.assigned_fidelity_sum / pairs
        result["mean_state_fidelity"] = float(np.max(overlaps))
        result["mean_bell_overlaps"] = [float(v) for v in overlaps]
        scale = n_pairs / pairs
        result["wall_time_s"] = wall * scale
        result["simulated_time_s"] = sim_s * scale
        result["relative_uncertainty"] = 1.0 / math.sqrt(pairs)
    else:
        result["mean_fidelity"] = None
        result["mean_state_fidelity"] = None
        result["wall_time_s"] = None
        result["simulated_time_s"] = None
        result["relative_uncertainty"] = None
    # Lower-variance cross-check: measured cost per attempt × attempts per pair of the model.
    result["wall_time_model_s"] = wall_per_attempt * n_pairs / p_model if p_model > 0 else None
    result["simulated_time_model_s"] = sim_s / attempts * n_pairs / p_model if p_model > 0 else None
    return result


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, required=True, help="heralded pairs wanted")
    parser.add_argument("--distance-km", type=float, required=True, help="total fiber length, km")
    parser.add_argument("--params-json", default="{}", help="peer parameters as a JSON object")
    args = parser.parse_args(argv)
    params = json.loads(args.params_json)
    result = run_sequence_peer(args.pairs, args.distance_km, params)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
