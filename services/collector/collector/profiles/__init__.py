"""The meter profiles shipped with the collector, one TOML file per meter model."""

from __future__ import annotations

from pathlib import Path

from collector.domain.profiles import Profile, ProfileError, parse_profile

SHIPPED_PROFILES_DIR = Path(__file__).parent


def load_profiles(*directories: Path) -> dict[str, Profile]:
    """Load every ``*.toml`` profile: the shipped ones, then each directory given.

    A later directory may replace a shipped profile of the same name (a site's correction).
    """
    profiles: dict[str, Profile] = {}
    for directory in (SHIPPED_PROFILES_DIR, *directories):
        if not directory.is_dir():
            raise ProfileError(f"{directory}: not a directory of meter profiles")
        for path in sorted(directory.glob("*.toml")):
            profile = parse_profile(path.read_text(encoding="utf-8"), source=str(path))
            if profile.name != path.stem:
                raise ProfileError(
                    f"{path}: name {profile.name!r} must match the file name {path.stem!r}"
                )
            profiles[profile.name] = profile
    return profiles
