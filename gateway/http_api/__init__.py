"""The HTTP API (`warden api`, docs/http-api.md): the Intents API's REST shapes, one more producer of signed
intents and one more reader of verified outcomes.

It holds the intent keys of the agents provisioned on its WARDEN_HOME, as `warden mcp` holds one,
and no chain key, no admin key. A request is authenticated by a bearer token from
`POST /v1/auth/agent-token` (`gateway.http_api.api_keys`), turned into an intent the agent signs, published on
warden.intents.submitted, and answered with the outcome the SDK verified (a pinned key of the
service allowed to say it, bound to the very intent sent: `sdk.outcome_hub`). So the
API adds nothing to what an agent may do: the worker and the signer judge every intent against
the agent's policy as they judge any other.

Bodies are validated by the same field types the intent uses (`schemas.fields`), so a bad value
is refused here, with the field named, before anything is signed. The OpenAPI document
(`/v1/openapi.json`, `gateway.http_api.openapi`) is generated from the models (`gateway.http_api.models`, `gateway.http_api.answers`) and says what they check: a body it
refuses is answered 400, one it allows that the intent's own rules refuse 422. Every error is the
same JSON with its `Code`, aiohttp's own answers too (`gateway.http_api.app`).
"""
