"""SEV-SNP attestation: the report a confidential VM's firmware signs, and its verification
against AMD's certificate chain (`runtime.attestation.verify`). Needs only ``cryptography``, so
clients can verify a signer's report without the rest of the signer."""
