"""Each package's public API is explicit and pinned (ARCHITECTURE.md, style rule 8)."""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "diqkd": ["__version__"],
    "diqkd.physics": [
        "BellStatistics",
        "HeraldedState",
        "LinkBudget",
        "LinkPoint",
        "RoundChunk",
        "bell_statistics",
        "chsh_from_correlations",
        "counts_from_rounds",
        "heralded_state",
        "link_budget",
        "link_point",
        "link_sweep",
        "protocol_input_probs",
        "qber_from_correlations",
        "sample_counts",
        "sample_rounds",
        "sample_rounds_array",
        "spi_state",
        "two_photon_state",
    ],
    "diqkd.security": [
        "TSIRELSON_BOUND",
        "Certificate",
        "Epsilons",
        "FiniteSizeResult",
        "NumericalBound",
        "binary_entropy",
        "certificate_from_result",
        "finite_size_certificate",
        "finite_size_key_length",
        "noisy_preprocessing_entropy",
        "noisy_preprocessing_rate",
        "numerical_entropy_bound",
        "numerical_key_rate",
        "optimal_noisy_preprocessing_rate",
        "pironio_rate",
        "plob_bound",
    ],
    "diqkd.postproc": [
        "Authenticator",
        "CascadeAlice",
        "CascadeBob",
        "KeyBlock",
        "KeyPool",
        "LeakLedger",
        "ReconciliationResult",
        "ToeplitzHasher",
        "efficiency",
        "epsilon_ec",
        "poly1305_forgery_bound",
        "privacy_amplify",
        "read_keys",
        "reconcile",
        "run_cascade",
        "toeplitz_hash",
        "verification_tag",
        "verify_keys",
        "write_keys",
    ],
    "diqkd.protocol": [
        "Channel",
        "ChannelAdversary",
        "Devices",
        "Heralds",
        "ModelDevices",
        "ProtocolParameters",
        "RandomnessSource",
        "RecordingDevices",
        "RecordsInput",
        "SeededRandomness",
        "SessionResult",
        "SessionStatistics",
        "SystemRandomness",
        "Transcript",
        "auth_key_bytes",
        "design_protocol",
        "distill_records",
        "final_key_length",
        "is_secure",
        "no_signalling_gap",
        "records_test_fraction",
        "run_session",
        "simulate_session",
    ],
    "diqkd.adversary": [
        "AttackReport",
        "BranchDevices",
        "Branches",
        "DEFAULT_EVENTS",
        "Eavesdropper",
        "GroundTruth",
        "InputRandomnessReport",
        "Intercepted",
        "KeyInformation",
        "ManInTheMiddle",
        "OracleDevices",
        "PredictingDevices",
        "PublicView",
        "Strategy",
        "TSIRELSON_WIN_PROBABILITY",
        "TsirelsonCheck",
        "certificate_information_bits",
        "entangling_target_chsh",
        "eve_key",
        "get_strategy",
        "input_randomness_of_records",
        "input_randomness_test",
        "intercept_resend_branches",
        "key_information",
        "list_strategies",
        "public_view",
        "purification_branches",
        "rank2_attack_state",
        "replay_bob",
        "run_attack",
        "tsirelson_check",
    ],
    "diqkd.kms": [
        "ClientKey",
        "KeyNotAuthorized",
        "KeyNotFound",
        "KeyStore",
        "KmeClient",
        "KmeClientError",
        "KmeConfig",
        "KmeConfigError",
        "KmeError",
        "NotEnoughKey",
        "PeerSyncError",
        "Reservation",
        "ServedKey",
        "create_app",
        "decrypt_bytes",
        "encrypt_bytes",
        "load_config",
        "serve",
        "write_test_pki",
    ],
    "diqkd.errors": [
        "DiqkdError",
        "KeyStoreError",
        "ModelError",
        "ProfileError",
        "ProtocolAbort",
        "ReconciliationError",
        "RecordsError",
        "UnitError",
        "VerificationFailed",
    ],
}


@pytest.mark.parametrize("module", sorted(PINNED))
def test_all_is_pinned_and_importable(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PINNED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is listed but missing"


def test_layers_do_not_import_upwards() -> None:
    """security/ and records/ never import physics/ (they work on numbers and bits)."""
    import ast
    from pathlib import Path

    root = Path(importlib.import_module("diqkd").__file__).parent  # type: ignore[arg-type]
    forbidden = {
        "kms": (
            "diqkd.physics",
            "diqkd.profiles",
            "diqkd.records",
            "diqkd.security",
            "diqkd.protocol",
            "diqkd.adversary",
            "diqkd.cli",
            "typer",
        ),
        "adversary": ("diqkd.cli", "diqkd.kms", "typer", "fastapi"),
        "postproc": ("diqkd.physics", "diqkd.profiles", "diqkd.security", "diqkd.cli", "typer"),
        "security": ("diqkd.physics", "diqkd.profiles", "diqkd.cli", "typer"),
        "records": ("diqkd.physics", "diqkd.profiles", "diqkd.security", "diqkd.cli", "typer"),
        "profiles": ("diqkd.physics", "diqkd.records", "diqkd.security", "diqkd.cli", "typer"),
        "physics": ("diqkd.records", "diqkd.security", "diqkd.cli", "typer"),
        "protocol": ("diqkd.cli", "diqkd.kms", "diqkd.adversary", "typer", "fastapi"),
    }
    for layer, banned in forbidden.items():
        for path in (root / layer).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    assert not name.startswith(banned), f"{path} imports {name}"
