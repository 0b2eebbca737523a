"""What the streams worker and the signer judge with: the guardrails (one pure function per
stage), fees, the rolling window, what calldata and typed data move, and the one judge that
admits an intent and orders its stages (`rules.judge`). Pure: the node and the spend so far come
in from the caller; nothing here knows Kafka."""
