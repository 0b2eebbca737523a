"""The audit ledger: every audit event, hash-chained per partition, in ClickHouse.

``chain``, ``merkle`` and ``checkpoint`` are the specification in code (pure, no
I/O); ``ledger`` is the append processor; ``store``, ``endpoint`` and ``sink``
move bytes; ``verify``, ``proof`` and ``cli`` are what auditors run. LEDGER.md
documents the encoding so a third party can check everything without Warden.
"""
