from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field, field_validator

from node.roles import ALL_STAFF_ROLES

__all__ = [
    "ApiKeyCreate", "ApiKeyCreated", "OrganisationCreate", "OrganisationPublic", "StaffCreate", "StaffPublic",
]

ORG_KINDS = ("centre", "branch", "outlet", "institution")
INSTITUTION_TYPES = ("university", "exam_authority", "appraisal_centre", "training_body")


class OrganisationCreate(BaseModel):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=200)
    kind: str
    institution_type: str | None = None
    parent_code: str | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in ORG_KINDS:
            raise ValueError(f"kind is one of {', '.join(ORG_KINDS)}")
        return v

    @field_validator("institution_type")
    @classmethod
    def _itype(cls, v: str | None) -> str | None:
        if v is not None and v not in INSTITUTION_TYPES:
            raise ValueError(f"institution_type is one of {', '.join(INSTITUTION_TYPES)}")
        return v


class OrganisationPublic(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    institution_type: str | None
    parent_id: int | None


class StaffCreate(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    display_name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=200, repr=False)
    roles: list[str] = Field(min_length=1)
    organisation_code: str | None = None

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - ALL_STAFF_ROLES)
        if unknown:
            raise ValueError(f"unknown roles: {', '.join(unknown)}")
        return sorted(set(v))


class StaffPublic(BaseModel):
    id: int
    username: str
    display_name: str
    roles: list[str]
    organisation_id: int | None
    active: bool


class ApiKeyCreate(BaseModel):
    organisation_code: str
    label: str = Field(default="", max_length=100)


class ApiKeyCreated(BaseModel):
    id: int
    prefix: str
    key: str = Field(description="shown once; only its hash is stored")
    organisation_id: int
    roles: list[str]
    created_at: dt.datetime
