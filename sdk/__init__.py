"""What agents and producers import: the client (`sdk.client`: build, sign and submit intents; its
one import surface), reading outcomes and believing only authentic ones (`sdk.outcomes`), the
signers' sealing keys (`sdk.signers`) and the admin's key (`sdk.admin`). It imports
no service: the records, signatures and attestation checks it needs live below it."""
