"""The broker's core: the gate service, consent, clocks, the audited log and signing, behind ports (no I/O library)."""
