"""Bitcoin: PSBTs (BIP-174), the agent's keys and scripts, and signing, with no I/O; on embit."""
