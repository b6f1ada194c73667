"""What the admin API reads and writes about organisations, staff accounts, API keys and roles."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from node.roles import ALL_STAFF_ROLES

__all__ = [
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyPublic",
    "Deactivation",
    "OrgCode",
    "OrganisationCreate",
    "OrganisationMove",
    "OrganisationPublic",
    "OrganisationUpdate",
    "PasswordIssued",
    "PasswordReset",
    "RoleOperation",
    "RolePublic",
    "RolesChange",
    "ServicePoint",
    "StaffCreate",
    "StaffCreated",
    "StaffPublic",
    "StaffUpdate",
    "Username",
]


def _plain_text(value: str) -> str:
    """Names are one line of text: no control characters (a NUL also breaks PostgreSQL text columns)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _role_names(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - ALL_STAFF_ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(unknown)} (see GET /api/v1/admin/roles)")
    return sorted(set(value))


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite gives back naive UTC times


UtcDatetime = Annotated[dt.datetime, AfterValidator(_utc)]
OrgCode = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
Username = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")]
OrgName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_plain_text)]
PersonName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_plain_text)]
Password = Annotated[str, Field(min_length=8, max_length=200)]
RoleList = Annotated[list[str], Field(max_length=20), AfterValidator(_role_names)]
OrgKind = Literal["centre", "branch", "outlet", "institution"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrganisationCreate(_Strict):
    code: OrgCode
    name: OrgName
    kind: OrgKind
    institution_type: str | None = Field(default=None, max_length=30)
    parent_code: OrgCode | None = Field(default=None, description="a branch without one goes under the centre")


class OrganisationUpdate(_Strict):
    """Fields to change (kind and code never change; the parent changes through `move`)."""

    name: OrgName | None = None
    institution_type: str | None = Field(default=None, max_length=30)

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, v: str | None) -> str:
        if v is None:
            raise ValueError("an organisation keeps a name")
        return v


class OrganisationMove(_Strict):
    parent_code: OrgCode | None = Field(description="the new parent; null only for an institution")


class Deactivation(_Strict):
    reroute_to: OrgCode | None = Field(
        default=None, description="a branch (or the centre) that takes over the open applications routed here"
    )


class OrganisationPublic(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    institution_type: str | None
    parent_id: int | None
    parent_code: str | None = None
    active: bool


class ServicePoint(BaseModel):
    """A branch or outlet where learners are served (the portal's list; a learner may pick a branch)."""

    code: str
    name: str
    kind: str
    parent_code: str | None


class StaffCreate(_Strict):
    username: Username
    display_name: PersonName
    password: Password | None = Field(default=None, repr=False,
                                      description="omit to have one generated (returned once)")
    roles: RoleList = Field(min_length=1)
    organisation_code: OrgCode | None = Field(default=None, description="default: the centre")


class StaffUpdate(_Strict):
    display_name: PersonName | None = None
    organisation_code: OrgCode | None = Field(default=None, description="move the staff member")


class StaffPublic(BaseModel):
    id: int
    username: str
    display_name: str
    roles: list[str]
    organisation_id: int | None
    organisation_code: str | None = None
    active: bool
    created_at: UtcDatetime


class StaffCreated(StaffPublic):
    initial_password: str | None = Field(default=None, description="generated, shown once; null if one was given")


class RolesChange(_Strict):
    """Either `set` (the whole list) or `add` and/or `remove`."""

    set: RoleList | None = None
    add: RoleList = []
    remove: RoleList = []

    @model_validator(mode="after")
    def _one_way(self) -> RolesChange:
        if (self.set is None) == (not self.add and not self.remove):
            raise ValueError("give either set, or add and/or remove")
        return self


class PasswordReset(_Strict):
    password: Password | None = Field(default=None, repr=False,
                                      description="omit to have one generated (returned once)")


class PasswordIssued(BaseModel):
    username: str
    password: str | None = Field(description="the generated password, shown once; null if one was given")


class ApiKeyCreate(_Strict):
    organisation_code: OrgCode
    label: Annotated[str, Field(default="", max_length=100), AfterValidator(lambda v: _plain_text(v) if v else v)]


class ApiKeyPublic(BaseModel):
    id: int
    prefix: str
    organisation_id: int
    organisation_code: str | None = None
    label: str
    roles: list[str]
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None


class ApiKeyCreated(BaseModel):
    id: int
    prefix: str
    key: str = Field(description="shown once; only its hash is stored")
    organisation_id: int
    roles: list[str]
    created_at: UtcDatetime


class RoleOperation(BaseModel):
    method: str
    path: str
    summary: str


class RolePublic(BaseModel):
    role: str
    description: str
    organisation_kinds: list[str]
    operations: list[RoleOperation]
