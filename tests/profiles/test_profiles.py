"""Hardware profiles: shipped files load, bad files give errors naming the key and range."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import diqkd.profiles
from diqkd.errors import ProfileError
from diqkd.profiles import Profile, list_profiles, load_profile, parse_profile, with_overrides


def shipped_data(name: str) -> dict:
    text = resources.files("diqkd.profiles").joinpath("data", f"{name}.toml").read_text()
    return tomllib.loads(text)


def write(tmp_path: Path, data: dict) -> Path:
    lines: list[str] = []
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for k, v in top.items():
        lines.append(f"{k} = {_toml(v)}")
    for section, body in data.items():
        if isinstance(body, dict):
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in body.items())
    path = tmp_path / "mine.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return repr(v)


def test_public_api_is_pinned() -> None:
    assert sorted(diqkd.profiles.__all__) == [
        "Profile",
        "list_profiles",
        "load_profile",
        "parse_profile",
        "with_overrides",
    ]


def test_shipped_profiles() -> None:
    names = list_profiles()
    assert {"ustc-2026", "generic-spi", "generic-two-photon"} <= set(names)
    for name in names:
        prof = load_profile(name)
        assert prof.name == name
        assert prof.sources, f"{name} must say which values are published and which assumed"
    assert load_profile("ustc-2026").heralding.scheme == "spi"
    assert load_profile("ustc-2026").operating_wavelength_nm == 1315.0
    assert load_profile("generic-two-photon").heralding.scheme == "two-photon"


def test_profiles_are_frozen() -> None:
    prof = load_profile("ustc-2026")
    with pytest.raises(Exception, match="frozen"):
        prof.atom.readout_fidelity = 0.5  # type: ignore[misc]


def test_user_file_round_trips(tmp_path: Path) -> None:
    data = shipped_data("ustc-2026")
    path = write(tmp_path, data)
    assert load_profile(path) == load_profile("ustc-2026")
    assert load_profile(str(path)).content_hash() == load_profile("ustc-2026").content_hash()


def test_unknown_key_is_named(tmp_path: Path) -> None:
    data = shipped_data("ustc-2026")
    data["atom"]["colection_efficiency"] = 0.1
    with pytest.raises(ProfileError, match=r"unknown key 'atom\.colection_efficiency'.*allowed"):
        load_profile(write(tmp_path, data))


def test_unknown_section_is_named(tmp_path: Path) -> None:
    data = shipped_data("ustc-2026")
    data["laser"] = {"power_w": 1.0}
    with pytest.raises(ProfileError, match="unknown key 'laser'"):
        load_profile(write(tmp_path, data))


@pytest.mark.parametrize(
    ("section", "key", "value", "allowed"),
    [
        ("atom", "readout_fidelity", 1.2, "0.5 <= value <= 1"),
        ("atom", "bright_state_population", 0.7, "0 < value <= 0.5"),
        ("detection", "dark_count_rate_hz", -3.0, "0 <= value <= 1e+08"),
        ("timing", "duty_cycle", 0.0, "0 < value <= 1"),
        ("fiber", "loss_db_per_km", 1000.0, "0 <= value <= 100"),
        ("heralding", "station_position", 1.0, "0 < value < 1"),
    ],
)
def test_out_of_range_names_key_and_range(
    tmp_path: Path, section: str, key: str, value: float, allowed: str
) -> None:
    data = shipped_data("ustc-2026")
    data[section][key] = value
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, data))
    msg = str(info.value)
    assert f"{section}.{key}" in msg
    assert allowed in msg


def test_nan_is_rejected(tmp_path: Path) -> None:
    data = shipped_data("ustc-2026")
    data["detection"]["window_s"] = float("nan")
    path = write(tmp_path, data)
    path.write_text(path.read_text().replace("nan", "nan"))
    with pytest.raises(ProfileError, match=r"detection\.window_s"):
        load_profile(path)


def test_missing_key_and_wrong_type(tmp_path: Path) -> None:
    data = shipped_data("ustc-2026")
    del data["fiber"]["loss_db_per_km"]
    with pytest.raises(ProfileError, match=r"missing key 'fiber\.loss_db_per_km'"):
        load_profile(write(tmp_path, data))
    data = shipped_data("ustc-2026")
    data["detection"]["efficiency"] = "high"
    with pytest.raises(ProfileError, match=r"detection\.efficiency"):
        load_profile(write(tmp_path, data))


def test_scheme_specific_rules() -> None:
    data = shipped_data("generic-two-photon")
    data["atom"]["bright_state_population"] = 0.05
    with pytest.raises(ProfileError, match="SPI heralding only"):
        parse_profile(data)
    data = shipped_data("ustc-2026")
    del data["atom"]["bright_state_population"]
    with pytest.raises(ProfileError, match="required for SPI"):
        parse_profile(data)
    data = shipped_data("ustc-2026")
    data["heralding"]["scheme"] = "three-photon"
    with pytest.raises(ProfileError, match=r"heralding\.scheme"):
        parse_profile(data)


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="unknown profile 'nope'"):
        load_profile("nope")
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[atom\nx = 1")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProfileError, match="cannot be read"):
        load_profile(binary)


def test_overrides() -> None:
    base = load_profile("ustc-2026")
    new = with_overrides(base, {"atom.bright_state_population": 0.05})
    assert new.atom.bright_state_population == 0.05
    assert base.atom.bright_state_population != 0.05
    assert new.content_hash() != base.content_hash()
    with pytest.raises(ProfileError, match="unknown profile key"):
        with_overrides(base, {"atom.nonsense": 1})
    with pytest.raises(ProfileError, match="out of range"):
        with_overrides(base, {"atom.readout_fidelity": 2.0})


@given(st.floats(min_value=1e-6, max_value=0.5), st.floats(min_value=0.5, max_value=1.0))
def test_in_range_values_are_accepted(alpha: float, fidelity: float) -> None:
    prof = with_overrides(
        load_profile("ustc-2026"),
        {"atom.bright_state_population": alpha, "atom.readout_fidelity": fidelity},
    )
    assert isinstance(prof, Profile)
    assert prof.atom.bright_state_population == alpha


def test_docs_embed_the_current_schema_table() -> None:
    from diqkd.profiles.schema import schema_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "profiles.md"
    assert schema_markdown() in docs.read_text(encoding="utf-8"), (
        "docs/profiles.md is stale: regenerate its table with `diqkd profiles schema`"
    )
