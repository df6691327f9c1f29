"""Nations (ISO 3166-1 alpha-3) and the groups that expand to them."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lessons.extensions import db

nation_group_members = Table(
    "nation_group_members",
    db.metadata,
    Column("group_code", String(10), ForeignKey("nation_groups.code", ondelete="CASCADE"),
           primary_key=True),
    Column("nation_code", String(3), ForeignKey("nations.code"), primary_key=True),
)


class Nation(db.Model):
    __tablename__ = "nations"

    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))

    def __repr__(self) -> str:
        return f"<Nation {self.code}>"


class NationGroup(db.Model):
    """A named set such as FVEY. Expanded when a lesson is saved, so editing a group
    never widens lessons already released."""

    __tablename__ = "nation_groups"

    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    members: Mapped[list[Nation]] = relationship(secondary=nation_group_members,
                                                 order_by=Nation.code)

    @property
    def member_codes(self) -> list[str]:
        return [n.code for n in self.members]
