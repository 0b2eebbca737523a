"""The audit ledger: every audit event, hash-chained per partition, in ClickHouse.

``chain``, ``merkle`` and ``checkpoint`` are the specification in code (pure, no
I/O); ``append`` is the append processor and ``batch`` feeds it one batch of
records; ``resume`` reads back what the store proves and ``source`` tells when the
broker changed; ``store``, ``endpoint`` and ``sink`` move bytes; ``verify`` (with
``chain_check``, its arithmetic) and ``proof`` are what auditors run (``warden audit``).
docs/ledger.md documents the encoding so a third party can check
everything without Warden.
"""
