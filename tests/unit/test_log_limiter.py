"""Repeated library log lines (aiokafka unable to reach its broker) are rate-limited, with a count."""

from __future__ import annotations

import logging

from mash_broker.core.logging import RepeatLimiter


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, args, None)


def test_the_first_of_each_kind_passes_then_one_per_period_with_a_count() -> None:
    now = [0.0]
    limiter = RepeatLimiter(every_s=30, clock=lambda: now[0])
    shown = []
    for second in range(90):
        now[0] = float(second)
        for _ in range(10):  # ten a second, as aiokafka does
            r = record("Unable connect to node with id %s: %s", 111, "refused")
            if limiter.filter(r):
                shown.append(r.getMessage())
        r = record("Unable to update metadata from [%s]", 111)
        if limiter.filter(r):
            shown.append(r.getMessage())
    assert len(shown) == 6  # 900 + 90 lines became 3 of each kind
    assert shown[0] == "Unable connect to node with id 111: refused"
    assert "(and 299 more like it in the last 30 s)" in shown[2]


def test_the_kinds_kept_are_bounded() -> None:
    limiter = RepeatLimiter(every_s=30, clock=lambda: 0.0, kinds=10)
    assert all(limiter.filter(record(f"distinct message {n}")) for n in range(100))
    assert len(limiter._seen) <= 10
