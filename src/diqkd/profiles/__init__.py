"""Hardware profiles: validated, frozen descriptions of a DI-QKD link's hardware (TOML)."""

from diqkd.profiles.loader import list_profiles, load_profile, parse_profile, with_overrides
from diqkd.profiles.schema import Profile

__all__ = ["Profile", "list_profiles", "load_profile", "parse_profile", "with_overrides"]
