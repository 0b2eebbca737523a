"""What the HTTP API's tests share: request bodies the Intents API must refuse, each with the
field its 400 must name (the unit tests over aiohttp's test server and the stack test over
`warden api` send the same ones), and the clock the unit tests hand the service."""

from datetime import datetime


class Clock:
    """A clock that says ``at`` until a test moves it."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


RECIPIENT = "0x" + "ab" * 20

BAD_BODIES = {
    "value as a number": ({"chain": "anvil", "to": RECIPIENT, "value": 0.1}, "value"),
    "value negative": ({"chain": "anvil", "to": RECIPIENT, "value": "-1"}, "value"),
    "value hex": ({"chain": "anvil", "to": RECIPIENT, "value": "0x10"}, "value"),
    "value scientific": ({"chain": "anvil", "to": RECIPIENT, "value": "1e18"}, "value"),
    "value over-precise": ({"chain": "anvil", "to": RECIPIENT, "value": "0.0000000000000000001"}, "value"),
    "address too short": ({"chain": "anvil", "to": "0xabcd", "value": "1"}, "to"),
    "address bad checksum": (
        {"chain": "anvil", "to": "0xAbCdEf0123456789abcdef0123456789ABCDEF01", "value": "1"},
        "to",
    ),
    "unknown field": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "valu": "2"}, "valu"),
    "boolean as a string": (
        {"chain": "anvil", "to": RECIPIENT, "value": "1", "simulate_first": "true"},
        "simulate_first",
    ),
    "missing to": ({"chain": "anvil", "value": "1"}, "to"),
    "an EVM address on a Solana network": ({"chain": "solana-local", "to": RECIPIENT, "value": "1"}, "to"),
    "gas_price for type 2": (
        {"chain": "anvil", "to": RECIPIENT, "value": "1", "gas_price": "1", "tx_type": 2},
        "gas_price",
    ),
    "tx_type 3": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "tx_type": 3}, "tx_type"),
    "gas_limit a fraction": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "gas_limit": 21000.5}, "gas_limit"),
    # A JSON integer as written: a float is refused even when its fraction is zero, and so is a boolean.
    "gas_limit a float": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "gas_limit": 21000.0}, "gas_limit"),
    "tx_type a float": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "tx_type": 2.0}, "tx_type"),
    "tx_type a boolean": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "tx_type": True}, "tx_type"),
    "nonce a float": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "nonce": 7.0}, "nonce"),
}

# Bodies `POST /v1/agents/{id}/sign` must refuse, with the field their 400 must name.
_DELEGATION = {"intent_type": "transaction", "chain": "anvil", "to": RECIPIENT, "value": "0", "tx_type": 4}
BAD_SIGN_BODIES = {
    "an authorization's chain_id a float": (
        {**_DELEGATION, "authorization_list": [{"chain_id": 31337.0, "address": RECIPIENT}]},
        "authorization_list.0.chain_id",
    ),
    "an authorization's chain_id a boolean": (
        {**_DELEGATION, "authorization_list": [{"chain_id": True, "address": RECIPIENT}]},
        "authorization_list.0.chain_id",
    ),
    "an authorization's nonce a string": (
        {**_DELEGATION, "authorization_list": [{"chain_id": 31337, "address": RECIPIENT, "nonce": "3"}]},
        "authorization_list.0.nonce",
    ),
    "tx_type a float": ({**_DELEGATION, "tx_type": 4.0}, "tx_type"),
}

