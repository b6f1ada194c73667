"""Catalogue entries the handbook and the standards bundle speak about: institutions and certificates
(programmes and courses are `node.rules.model.Programme` / `Course`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from node.rules.model import Programme

__all__ = ["Catalogue", "Certificate", "Institution"]


@dataclass(frozen=True, kw_only=True)
class Institution:
    code: str
    name: str
    kind: str | None = None  # university, open_university, vocational_college, appraisal_centre, training_body


@dataclass(frozen=True, kw_only=True)
class Certificate:
    """A certificate in the catalogue: a vocational qualification (levels 五级 … 一级), skill level, training …"""

    code: str
    name: str
    type: str  # an achievement type, usually vocational_qualification
    levels: tuple[str, ...] = ()
    issuer_code: str | None = None
    issuer_name: str | None = None
    validity_years: int | None = None  # None: does not expire
    illustrative: bool = False

    def display(self, level: str | None = None) -> str:
        return f"{self.name}（{level}）" if level else self.name


@dataclass(frozen=True, kw_only=True)
class Catalogue:
    institutions: Mapping[str, Institution] = field(default_factory=dict)
    certificates: Mapping[str, Certificate] = field(default_factory=dict)
    programmes: Mapping[str, Programme] = field(default_factory=dict)
