"""One exception root for MASH Broker, each subclass with a stable code audit records key on."""

from __future__ import annotations


class MashError(Exception):
    """Root of every error MASH Broker raises on purpose."""

    code = "mash_error"

    def __init__(self, message: str, *, record: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.record = record
        self.field = field

    def __str__(self) -> str:
        where = ", ".join(p for p in (self.record, f"field {self.field}" if self.field else None) if p)
        return f"{where}: {self.message}" if where else self.message


class ContractError(MashError):
    """A message does not match its contract."""

    code = "contract_invalid"


class InputFileError(MashError):
    """An input file cannot be used at all (wrong header, undecodable bytes)."""

    code = "file_unusable"


class RowError(MashError):
    """One row of an input file is invalid; the rows around it still go."""

    code = "row_invalid"


class PolicyError(MashError):
    """A sharing policy or calendar file is invalid."""

    code = "policy_invalid"


class LedgerError(MashError):
    """The ledger refused or lost a write."""

    code = "ledger_error"


class BrokerUnavailable(MashError):
    """No Kafka broker could be reached or started."""

    code = "broker_unavailable"


class NotFound(MashError):
    """A named record (school, message, queue item) does not exist."""

    code = "not_found"
