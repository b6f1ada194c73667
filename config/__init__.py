"""Configuration: the one `Settings` object and the founding regions' files."""

from config.settings import (
    DatabaseSettings,
    FederationSettings,
    ImportSettings,
    NodeSettings,
    RegionProfile,
    SecuritySettings,
    Settings,
    load_region,
    region_names,
)

__all__ = [
    "DatabaseSettings",
    "FederationSettings",
    "ImportSettings",
    "NodeSettings",
    "RegionProfile",
    "SecuritySettings",
    "Settings",
    "load_region",
    "region_names",
]
