"""What agents and producers import: the client (`sdk.client`: build, sign and submit intents,
wait for outcomes and believe only authentic ones) and the admin's key (`sdk.admin`). It imports
no service: the records, signatures and attestation checks it needs live below it."""
