"""Base model and bounded field types shared by every contract."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Final

from pydantic import AfterValidator, AwareDatetime, BaseModel, StringConstraints

SCHEMA_VERSION: Final = "1"

# Every C0 and C1 control (Unicode Cc) but tab and newline, CR included, as adapters.common.clean_text refuses.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class Contract(BaseModel, frozen=True, extra="forbid", str_strip_whitespace=True):
    """Every contract: immutable, unknown fields refused."""


def _clean_text(value: str) -> str:
    """Untrusted agency free text: NFC-normalised, no control characters except newline and tab."""
    value = unicodedata.normalize("NFC", value)
    if _CONTROL.search(value):
        raise ValueError("contains control characters")
    return value


# Free text written by an agency: bounded, cleaned; escaped wherever it is displayed.
FreeText = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_clean_text)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_clean_text)]
OrgId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*:[A-Za-z0-9_.-]{1,64}$")]
# A consent's or agreement's recipient: an organisation ("gp:A12345"), or every one of a class
# ("gp:*" or just "gp").
RecipientRef = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*(:([A-Za-z0-9_.-]{1,64}|\*))?$")]
SchoolUrn = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
Timestamp = AwareDatetime
