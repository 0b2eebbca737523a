"""Bitcoin: PSBTs (BIP-174), the agent's keys and scripts, and signing, with no I/O; on embit.

The Bitcoin counterpart of `evm` and `svm`: it knows nothing of policies, topics or keys' custody.
`btc.addresses` reads and writes addresses, `btc.wallet` derives the agent's key and its two
scripts (P2WPKH and key path P2TR), `btc.psbt` reads what a PSBT pays and `btc.signing` signs it.
Parsing, keys, scripts and signatures are embit's, not a codec of ours."""
