"""Load, list and override hardware profiles, turning validation failures into clear errors."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from diqkd.errors import ProfileError
from diqkd.profiles.schema import Profile

__all__ = [
    "describe_range",
    "list_profiles",
    "load_profile",
    "parse_profile",
    "with_overrides",
]

_DATA = "data"


def list_profiles() -> list[str]:
    """Names of the profiles shipped with diqkd, sorted."""
    folder = resources.files("diqkd.profiles").joinpath(_DATA)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a shipped profile by name, or a user's profile from a TOML file path.

    Raises
    ------
    ProfileError
        If the name is unknown, the file is unreadable or not TOML, or any key is unknown,
        missing, of the wrong type or out of range (the message names the key and the range).
    """
    text, origin = _read_source(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {origin}: not valid TOML ({exc})") from None
    return parse_profile(data, origin=origin)


def parse_profile(data: Mapping[str, Any], *, origin: str = "<data>") -> Profile:
    """Validate plain data as a :class:`Profile`."""
    try:
        return Profile.model_validate(dict(data))
    except ValidationError as exc:
        raise ProfileError(f"profile {origin}: {_describe(exc)}") from None


def with_overrides(profile: Profile, overrides: Mapping[str, Any]) -> Profile:
    """A new profile with dotted keys replaced, e.g. ``{"atom.bright_state_population": 0.05}``.

    The result is validated like a loaded file.
    """
    data = profile.to_dict()
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node: dict[str, Any] = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                raise ProfileError(f"unknown profile section {part!r} in override {dotted!r}")
            node = child
        if parts[-1] not in node and dotted != "atom.bright_state_population":
            raise ProfileError(f"unknown profile key {dotted!r} in override")
        node[parts[-1]] = value
    return parse_profile(data, origin=f"{profile.name} (with overrides)")


def _read_source(name_or_path: str | Path) -> tuple[str, str]:
    text_name = str(name_or_path)
    if text_name in list_profiles():
        res = resources.files("diqkd.profiles").joinpath(_DATA, f"{text_name}.toml")
        return res.read_text(encoding="utf-8"), repr(text_name)
    path = Path(name_or_path)
    if path.suffix.lower() != ".toml" and not path.exists():
        known = ", ".join(list_profiles())
        raise ProfileError(
            f"unknown profile {text_name!r}: give a shipped name ({known}) or a .toml file path"
        )
    try:
        return path.read_text(encoding="utf-8"), repr(str(path))
    except FileNotFoundError:
        raise ProfileError(f"profile file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile file {str(path)!r} cannot be read: {exc}") from None


def _describe(exc: ValidationError) -> str:
    """One readable line per problem, naming the dotted key and the allowed range."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) if loc else "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            lines.append(f"unknown key {key!r}{_allowed_keys_hint(loc)}")
        elif kind == "missing":
            lines.append(f"missing key {key!r}{_field_hint(loc)}")
        elif kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
            lines.append(f"{key} = {err.get('input')!r} is out of range; allowed: {_range_of(loc)}")
        elif kind == "finite_number":
            lines.append(f"{key} must be a finite number; allowed: {_range_of(loc)}")
        elif kind == "value_error":
            lines.append(str(err["msg"]).removeprefix("Value error, "))
        else:
            lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(lines)


def _field_info(loc: list[str]) -> FieldInfo | None:
    model: type[BaseModel] = Profile
    info: FieldInfo | None = None
    for part in loc:
        info = model.model_fields.get(part)
        if info is None:
            return None
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
    return info


def _range_of(loc: list[str]) -> str:
    info = _field_info(loc)
    if info is None:
        return "see docs/profiles.md"
    return describe_range(info)


def describe_range(info: FieldInfo) -> str:
    """The numeric range of a field as ``lo <= value < hi`` (empty ends left out)."""
    lo, hi, lo_op, hi_op = -math.inf, math.inf, "<", "<"
    for m in info.metadata:
        for attr, op in (("gt", "<"), ("ge", "<=")):
            if getattr(m, attr, None) is not None:
                lo, lo_op = getattr(m, attr), op
        for attr, op in (("lt", "<"), ("le", "<=")):
            if getattr(m, attr, None) is not None:
                hi, hi_op = getattr(m, attr), op
    if lo == -math.inf and hi == math.inf:
        return "—"
    left = f"{lo:g} {lo_op} " if lo != -math.inf else ""
    right = f" {hi_op} {hi:g}" if hi != math.inf else ""
    return f"{left}value{right}"


def _field_hint(loc: list[str]) -> str:
    info = _field_info(loc)
    if info is None or info.description is None:
        return ""
    return f" ({info.description.split('.')[0]})"


def _allowed_keys_hint(loc: list[str]) -> str:
    model: type[BaseModel] = Profile
    for part in loc[:-1]:
        info = model.model_fields.get(part)
        ann = info.annotation if info is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return ""
        model = ann
    return "; allowed here: " + ", ".join(model.model_fields)
