"""The ground floor beneath streams and signer: configuration (the one reader of the
environment), the clock, JSON-RPC and the per-chain node cache, readiness files, pinned
trust anchors and the Kafka helpers. It imports only `schemas`."""
