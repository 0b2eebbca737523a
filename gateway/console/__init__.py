"""The console: the web pages through which admins, analysts and auditors see, decide and sign.

A service beside the SDK: it reads what the SDK reads (the topics, the ledger's endpoint) and
relays what a person's own device signed. It holds no admin key and cannot approve anything: a
decision made here is a WebAuthn assertion over the exact bytes the page showed, which the streams
worker and the signer check themselves (`schemas.passkeys`)."""
