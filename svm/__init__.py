"""Solana transactions: what a serialized transaction says (`svm.transactions`), the
instructions of the programs Warden reads (`svm.instructions`), and the signature over it.

The Solana counterpart of `evm`: it knows nothing of policies, topics or keys' custody. Parsing
and serialization are solders' (the Rust SDK's own types), not a codec of ours."""
