"""Reference data seeded by the first migration: ISO 3166-1 nations and nation groups.

The initial migration and the test fixtures both seed from here, so the two agree.
"""

from __future__ import annotations

import pycountry

GROUPS: dict[str, tuple[str, list[str]]] = {
    "FVEY": ("Five Eyes", ["AUS", "CAN", "GBR", "NZL", "USA"]),
}

# Shorter names than ISO's formal ones, for pick lists that staff officers read fast.
_SHORT_NAMES = {
    "GBR": "United Kingdom",
    "USA": "United States",
    "KOR": "Republic of Korea",
    "PRK": "DPR Korea",
    "RUS": "Russia",
    "IRN": "Iran",
    "SYR": "Syria",
    "TWN": "Taiwan",
    "VNM": "Viet Nam",
    "BOL": "Bolivia",
    "VEN": "Venezuela",
    "TZA": "Tanzania",
    "MDA": "Moldova",
    "LAO": "Laos",
    "FSM": "Micronesia",
    "COD": "DR Congo",
}


def nation_rows() -> list[dict[str, str]]:
    """Every ISO 3166-1 alpha-3 code with a readable name, sorted by code."""
    rows = [
        {"code": c.alpha_3, "name": _SHORT_NAMES.get(c.alpha_3, getattr(c, "common_name", c.name))}
        for c in pycountry.countries
    ]
    return sorted(rows, key=lambda r: r["code"])


def group_rows() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(groups, memberships) ready for bulk insert."""
    groups = [{"code": code, "name": name} for code, (name, _) in GROUPS.items()]
    members = [
        {"group_code": code, "nation_code": nation}
        for code, (_, nations) in GROUPS.items()
        for nation in nations
    ]
    return groups, members
