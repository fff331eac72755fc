"""`mash audit verify`'s second half: every stored copy against the hash its entry recorded (see ``copies``).

Fed the log a page of entries at a time (the same pages the log check reads), it looks up the copies
those entries recorded in one query per table and column, so memory stays bounded by the page, whatever
the size of the ledger. Quarantine rows have no id an entry names: they are paired with their
``message.quarantined`` entries in the order both were written, a page of each at a time.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import AsyncIterator

from mash_broker.core.audit.copies import (
    ConsentCopy,
    QuarantinedCopy,
    StoredCopies,
    Wanted,
    consent_mismatch,
    mismatch,
    stored_sha256,
    wanted_by,
)
from mash_broker.core.audit.findings import Problem, Report
from mash_broker.core.audit.log import Entry

PAGE = 5000
CAP = 100  # problems of one code named before the rest are only counted
CHECKED = ("messages.envelope", "deliveries.envelope", "outbox.value", "quarantine.raw", "policies.text")
_Key = tuple[str, str, str]  # message id (or ""), reason, topic


class CopyChecker:
    """Check the stored copies a log's entries recorded; ``await add(page)`` per page, then ``finish``."""

    def __init__(self, ledger: StoredCopies, report: Report, *, page: int = PAGE) -> None:
        self.ledger, self.report, self.page = ledger, report, page
        self.found: dict[str, int] = defaultdict(int)  # "table.column" -> rows found for a recorded hash
        self._rows: AsyncIterator[list[QuarantinedCopy]] = ledger.quarantined_copies(page=page)
        self._rows_done = False
        self._q_entries = self._q_rows = 0
        self._open_entries: dict[_Key, deque[tuple[str | None, str]]] = defaultdict(deque)  # (raw sha, entry)
        self._open_rows: dict[_Key, deque[tuple[str, QuarantinedCopy]]] = defaultdict(deque)

    def _problem(self, code: str, place: str, detail: str) -> None:
        self.report.add(Problem(code, place, detail), cap=CAP)

    async def add(self, entries: list[Entry]) -> None:
        groups: dict[tuple[str, str], list[Wanted]] = defaultdict(list)
        for entry in entries:
            for wanted in wanted_by(entry):
                groups[wanted.table, wanted.column].append(wanted)
            if entry.event_type == "message.quarantined":
                self._quarantine_entry(entry)
        for (table, column), batch in groups.items():
            stored = await self.ledger.stored_texts(table, column, {w.key for w in batch})
            for w in batch:
                text = stored.get(w.key)
                if text is None:
                    self._problem("stored_copy_missing", w.place(), f"the row is gone: {w.entry} recorded its hash")
                    continue
                self.found[f"{table}.{column}"] += 1
                self.report.copies += 1
                if why := mismatch(w, text):
                    self._problem("stored_copy_altered", w.place(), why)
        while not self._rows_done and self._q_rows < self._q_entries:
            await self._next_rows()

    async def finish(self) -> Report:
        while not self._rows_done:
            await self._next_rows()
        self._close_quarantine()
        async for page in self.ledger.consent_copies(page=self.page):
            for copy in page:
                self._consent(copy)
        for column in CHECKED:
            rows = await self.ledger.count(column.split(".")[0])
            if (missing := rows - self.found[column]) > 0:
                self.report.unrecorded[column] = missing
        return self.report

    # -- quarantine rows, paired with their entries in the order both were written -----------------------

    def _quarantine_entry(self, entry: Entry) -> None:
        d = entry.detail if isinstance(entry.detail, dict) else {}
        key = (entry.message_id or "", str(d.get("reason")), str(d.get("topic")))
        sha = d.get("raw_sha256") if isinstance(d.get("raw_sha256"), str) else None
        self._q_entries += 1
        rows = self._open_rows[key]
        for i, (row_sha, row) in enumerate(rows):
            if sha is None or row_sha == sha:
                del rows[i]
                self._paired(sha, row)
                return
        self._open_entries[key].append((sha, entry.describe()))

    async def _next_rows(self) -> None:
        page = await anext(self._rows, None)
        if not page:
            self._rows_done = True
            return
        for row in page:
            self._q_rows += 1
            key, sha = (row.message_id or "", row.reason_code, row.topic), stored_sha256(row.raw)
            entries = self._open_entries[key]
            match = next((i for i, (s, _) in enumerate(entries) if s == sha), None)
            if match is None:
                match = next((i for i, (s, _) in enumerate(entries) if s is None), None)
            if match is None:
                self._open_rows[key].append((sha, row))
            else:
                recorded, _ = entries[match]
                del entries[match]
                self._paired(recorded, row)

    def _paired(self, sha: str | None, row: QuarantinedCopy) -> None:
        if sha is not None:  # None: an entry written before raw hashes were recorded (counted unrecorded)
            self.found["quarantine.raw"] += 1
            self.report.copies += 1

    def _close_quarantine(self) -> None:
        for key, rows in self._open_rows.items():
            entries = self._open_entries.get(key, deque())
            for _, row in rows:
                place = f"quarantine.raw of quarantine item {row.item_id}" + (
                    f" (message {row.message_id})" if row.message_id else ""
                )
                if entries:
                    _, entry = entries.popleft()
                    self._problem("stored_copy_altered", place, f"was changed after it was stored: {entry} recorded")
                else:
                    self._problem("stored_copy_unrecorded", place, "no message.quarantined entry records this row")
        for key, entries in self._open_entries.items():
            for _, entry in entries:
                mid = f" of message {key[0]}" if key[0] else ""
                self._problem(
                    "stored_copy_missing", f"quarantine.raw{mid}", f"the row is gone: {entry} recorded its hash"
                )

    def _consent(self, copy: ConsentCopy) -> None:
        if why := consent_mismatch(copy):
            self._problem(
                "stored_copy_altered", f"consents.payload of consent row {copy.row_id} (message {copy.message_id})", why
            )
        else:
            self.report.copies += 1
