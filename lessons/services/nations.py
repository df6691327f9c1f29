"""Nation and group lookups used by forms, rules and lesson services."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from lessons.extensions import db
from lessons.models import Nation, NationGroup


def all_nations() -> list[Nation]:
    return list(db.session.scalars(select(Nation).order_by(Nation.code)))


def all_groups() -> list[NationGroup]:
    return list(db.session.scalars(select(NationGroup).order_by(NationGroup.code)))


def known_codes() -> set[str]:
    """Every code a user may type where nations are asked for: nations and groups."""
    nations = db.session.scalars(select(Nation.code))
    groups = db.session.scalars(select(NationGroup.code))
    return set(nations) | set(groups)


def nation_codes() -> set[str]:
    return set(db.session.scalars(select(Nation.code)))


def expand(codes: Iterable[str]) -> list[str]:
    """Replace group codes by their member nations; return sorted, deduplicated codes.

    Expansion happens at save time, so a later edit of a group never widens a lesson.
    """
    codes = list(codes)
    groups = {g.code: g for g in db.session.scalars(
        select(NationGroup).where(NationGroup.code.in_(codes)))}
    result: set[str] = set()
    for code in codes:
        result.update(groups[code].member_codes if code in groups else [code])
    return sorted(result)
