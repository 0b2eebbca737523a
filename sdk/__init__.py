"""What agents and producers import: the client (`sdk.client`: build, sign and submit intents; its
one import surface), reading outcomes and believing only authentic ones (`sdk.outcomes`), an
agent's policy in force and its transactions read back (`sdk.records`), what an agent's tools
answer (`sdk.mcp_results`), the signers' sealing keys (`sdk.signers`) and the admin's key
(`sdk.admin`). It imports no service and no server (those are `gateway`): the records,
signatures and attestation checks it needs live below it."""
