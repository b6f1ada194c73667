from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = [
    "ActivationCodePublic",
    "ActivationRequest",
    "LearnerCreate",
    "LearnerPublic",
    "LearnerRegister",
    "RegistrationAccepted",
    "RegistrationVerify",
]


class LearnerCreate(BaseModel):
    id_type: str = Field(default="resident_id", max_length=40, examples=["resident_id"])
    id_number: str = Field(min_length=1, max_length=40, repr=False)
    name: str = Field(min_length=1, max_length=100)
    # At the outlet, after checking the ID card: the password the learner types (activates the account).
    password: str | None = Field(default=None, min_length=8, max_length=200, repr=False)


class LearnerRegister(LearnerCreate):
    password: str = Field(min_length=8, max_length=200, repr=False)


class RegistrationAccepted(BaseModel):
    """The one answer to every online registration, whether or not the person has an account."""

    status: Literal["pending_verification"] = "pending_verification"
    reference: str = Field(description="show it, with the ID card, at an outlet; shown only once")
    expires_at: dt.datetime
    message: str


class RegistrationVerify(BaseModel):
    reference: str = Field(min_length=1, max_length=40)
    id_type: str = Field(default="resident_id", max_length=40)
    id_number: str = Field(min_length=1, max_length=40, repr=False, description="as read from the ID card")


class ActivationCodePublic(BaseModel):
    account_no: str
    code: str = Field(description="the one-time code; shown only in this answer")
    purpose: Literal["activation", "reset"]
    expires_at: dt.datetime
    letter: str = Field(description="printable letter text, Chinese then English")


class ActivationRequest(BaseModel):
    account_no: str | None = Field(default=None, min_length=1, max_length=20)
    id_type: str = Field(default="resident_id", max_length=40)
    id_number: str | None = Field(default=None, min_length=1, max_length=40, repr=False)
    code: str = Field(min_length=1, max_length=40, repr=False)
    new_password: str = Field(min_length=8, max_length=200, repr=False)

    @model_validator(mode="after")
    def _one_name(self) -> ActivationRequest:
        if (self.account_no is None) == (self.id_number is None):
            raise ValueError("give either account_no or id_number")
        return self


class LearnerPublic(BaseModel):
    id: int
    account_no: str
    id_type: str
    id_number_masked: str
    name: str
    pseudonym: str
    created_at: dt.datetime
