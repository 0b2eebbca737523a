"""Settings for every Warden process, read from the environment.

This module is the only reader of ``os.environ`` in Warden (a test in
``tests/unit/test_environment_reader.py`` holds it to that): every knob a deployment can turn is
named here once, typed, with its default, so `warden up` can hand the same
settings to each process it starts and a reader can see what can change.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtime.registry import REGISTRY
from runtime.rpc import NoRpc
from schemas.chains import Family, UnknownChain


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _opt(name: str) -> str | None:
    return os.environ.get(name) or None


def _broker() -> str:
    """WARDEN_BROKER; unset, every node of the Kafka cluster `warden up` keeps under WARDEN_HOME
    (its ``kafka/cluster.json``), so a command finds the cluster while any node is up; else the
    default port."""
    named = os.environ.get("WARDEN_BROKER")
    if named:
        return named
    cluster = Path(_env("WARDEN_HOME", ".warden")) / "kafka" / "cluster.json"
    try:
        nodes = json.loads(cluster.read_text())["nodes"]
        return ",".join(f"127.0.0.1:{node['port']}" for node in nodes)
    except (OSError, ValueError, KeyError, TypeError):
        return "127.0.0.1:19092"


def _opt_ms(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number of milliseconds") from None


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") == "1"


def _names(name: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in os.environ.get(name, "").split(",") if n.strip())


@dataclass(frozen=True)
class RootSettings:
    """Where the cloud and HSM roots of trust live. Each provider needs only its own fields;
    a missing one is reported, with its variable's name, when that provider is opened."""

    # Roots beyond WARDEN_ROOT_PROVIDER, in order: the 2-of-3 custody modes spread shares over them.
    more_providers: tuple[str, ...] = field(default_factory=lambda: _names("WARDEN_ROOT_PROVIDERS"))
    aws_kms_key_id: str | None = field(default_factory=lambda: _opt("WARDEN_AWS_KMS_KEY_ID"))
    aws_region: str = field(
        default_factory=lambda: (
            _opt("WARDEN_AWS_REGION") or _opt("AWS_REGION") or _opt("AWS_DEFAULT_REGION") or "us-east-1"
        )
    )
    aws_kms_endpoint: str | None = field(default_factory=lambda: _opt("WARDEN_AWS_KMS_ENDPOINT"))
    gcp_kms_key: str | None = field(default_factory=lambda: _opt("WARDEN_GCP_KMS_KEY"))
    gcp_kms_endpoint: str | None = field(default_factory=lambda: _opt("WARDEN_GCP_KMS_ENDPOINT"))
    # Plaintext gRPC exists for a local test server only; never set it against Google.
    gcp_kms_insecure: bool = field(default_factory=lambda: _flag("WARDEN_GCP_KMS_INSECURE"))
    azure_kv_key_id: str | None = field(default_factory=lambda: _opt("WARDEN_AZURE_KV_KEY_ID"))
    pkcs11_module: str | None = field(default_factory=lambda: _opt("WARDEN_PKCS11_MODULE"))
    pkcs11_token: str | None = field(default_factory=lambda: _opt("WARDEN_PKCS11_TOKEN"))
    pkcs11_pin: str | None = field(default_factory=lambda: _opt("WARDEN_PKCS11_PIN"))
    pkcs11_key_label: str = field(default_factory=lambda: _env("WARDEN_PKCS11_KEY_LABEL", "warden-root"))


@dataclass(frozen=True)
class AttestationSettings:
    """What a verifier requires of a signer's SEV-SNP report (clients sealing to it, and the key
    release of vaults that require attestation). With no measurements listed, no report is
    accepted: there is nothing to compare the launch measurement with."""

    # Allowed launch measurements, 48 bytes hex each, comma-separated (`warden attest measure`).
    measurements: tuple[str, ...] = field(default_factory=lambda: _names("WARDEN_ATTESTATION_MEASUREMENTS"))
    product: str = field(default_factory=lambda: _env("WARDEN_ATTESTATION_PRODUCT", "milan"))
    # BOOTLOADER,TEE,SNP,MICROCODE security patch levels the reported TCB must reach.
    minimum_tcb: str = field(default_factory=lambda: _env("WARDEN_ATTESTATION_MINIMUM_TCB", "0,0,0,0"))
    # A debug guest's memory is readable by the host: for a lab machine, never production.
    allow_debug: bool = field(default_factory=lambda: _flag("WARDEN_ATTESTATION_ALLOW_DEBUG"))
    refuse_smt: bool = field(default_factory=lambda: _flag("WARDEN_ATTESTATION_REFUSE_SMT"))
    allow_migration_agent: bool = field(default_factory=lambda: _flag("WARDEN_ATTESTATION_ALLOW_MIGRATION_AGENT"))
    # A signer's announced report is believed for this long; the signer re-announces at half of it.
    max_age_s: int = field(default_factory=lambda: int(_env("WARDEN_ATTESTATION_MAX_AGE_S", "3600")))
    # The chip's VCEK (DER) from AMD's KDS, for a host whose certificate table does not carry it.
    vcek_file: str | None = field(default_factory=lambda: _opt("WARDEN_SEV_VCEK"))


@dataclass(frozen=True)
class LedgerSettings:
    # A signed checkpoint after this many appended events or this many seconds, whichever first.
    checkpoint_every: int = field(default_factory=lambda: int(_env("WARDEN_LEDGER_CHECKPOINT_EVERY", "1000")))
    checkpoint_seconds: float = field(default_factory=lambda: float(_env("WARDEN_LEDGER_CHECKPOINT_SECONDS", "10")))
    batch_max: int = field(default_factory=lambda: int(_env("WARDEN_LEDGER_BATCH", "5000")))
    # And at most this many bytes of records: a worker's record holds a lot of intents' events.
    batch_max_bytes: int = field(default_factory=lambda: int(_env("WARDEN_LEDGER_BATCH_BYTES", str(8 << 20))))
    # The log's name: its note key's name, and with "/<chain>" each chain's checkpoint origin
    # (c2sp.org/tlog-checkpoint). Unique per deployment: witnesses tell logs apart by it.
    log_name: str = field(default_factory=lambda: _env("WARDEN_LEDGER_LOG_NAME", "warden.local/audit"))
    # The witnesses the sink asks to cosign each checkpoint: "<url>=<vkey>" separated by commas
    # (`warden witness key` prints a witness's vkey), and how many must cosign for a receipt.
    witnesses: str = field(default_factory=lambda: _env("WARDEN_LEDGER_WITNESSES", ""))
    witness_quorum: int = field(default_factory=lambda: int(_env("WARDEN_LEDGER_WITNESS_QUORUM", "0")))
    # Audit webhooks (docs/webhooks.md): the first retry's wait, the longest wait between two
    # attempts, how long after an event is owed a failed attempt gives it up (at least a day in a
    # deployment; the tests set seconds), each attempt's timeout, and how often the ledger looks
    # for new events to deliver.
    webhook_retry_first_s: float = field(default_factory=lambda: float(_env("WARDEN_WEBHOOK_RETRY_FIRST_S", "5")))
    webhook_retry_max_s: float = field(default_factory=lambda: float(_env("WARDEN_WEBHOOK_RETRY_MAX_S", "3600")))
    webhook_give_up_s: float = field(default_factory=lambda: float(_env("WARDEN_WEBHOOK_GIVE_UP_S", "259200")))
    webhook_timeout_s: float = field(default_factory=lambda: float(_env("WARDEN_WEBHOOK_TIMEOUT_S", "15")))
    webhook_poll_s: float = field(default_factory=lambda: float(_env("WARDEN_WEBHOOK_POLL_S", "1")))


# The fetch wait on Apache Kafka (durable storage) unless set: Kafka answers a waiting fetch as soon
# as a record arrives, so a longer wait costs no latency; it only sets how often an idle consumer
# asks. Below the group session timeout (10 s) and far below aiokafka's request timeout (40 s).
KAFKA_FETCH_WAIT_MS = 5_000
MEMORY_FETCH_WAIT_MS = 50
# The fetch wait of a reader that moves from partition to partition (`Settings.seek_fetch_wait_ms`).
KAFKA_SEEK_FETCH_WAIT_MS = 200


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(_env("WARDEN_HOME", ".warden")).resolve())
    broker: str = field(default_factory=_broker)
    rpc_url: str = field(default_factory=lambda: _env("WARDEN_RPC_URL", "http://127.0.0.1:18545"))
    # Per-chain RPC overrides, WARDEN_RPC_URL_<CHAIN> (e.g. WARDEN_RPC_URL_BASE), read once here.
    rpc_urls: Mapping[str, str] = field(
        default_factory=lambda: {
            name[len("WARDEN_RPC_URL_") :]: url
            for name, url in os.environ.items()
            if name.startswith("WARDEN_RPC_URL_")
        }
    )
    topology: str = field(default_factory=lambda: _env("WARDEN_TOPOLOGY", "fused"))
    # The broker and its log: "memory" (the embedded Tansu, its log lost when it stops; tests,
    # benchmarks, the demo) or "durable" (Apache Kafka, its log under $WARDEN_HOME/kafka; `warden up`).
    broker_storage: str = field(default_factory=lambda: _env("WARDEN_BROKER_STORAGE", "memory"))
    clickhouse_url: str | None = field(default_factory=lambda: _opt("WARDEN_CLICKHOUSE_URL"))
    ledger_http: str = field(default_factory=lambda: _env("WARDEN_LEDGER_HTTP", "127.0.0.1:18123"))
    # Where `warden api` listens: the Intents API over HTTP.
    api_http: str = field(default_factory=lambda: _env("WARDEN_API_HTTP", "127.0.0.1:8780"))
    # Where `warden console` listens: the web console.
    console_http: str = field(default_factory=lambda: _env("WARDEN_CONSOLE_HTTP", "127.0.0.1:8790"))
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    # Where the signer runs: "auto" (SEV-SNP when the guest gives a report, else none), "sev-snp"
    # (refuse to start without a report) or "none" (never attest).
    tee: str = field(default_factory=lambda: _env("WARDEN_TEE", "auto"))
    # Pinned policy-signing keys, "key_id=0x<hex>,..."; unset means the local admin key under home.
    admin_keys: str | None = field(default_factory=lambda: _opt("WARDEN_ADMIN_KEYS"))
    # How many of those admins must sign each action: one number, or "policy=2,approval=2,keys=2,
    # chains=2,admins=3" (schemas.admins.parse_thresholds); unset: 1.
    admin_quorum: str | None = field(default_factory=lambda: _opt("WARDEN_ADMIN_QUORUM"))
    # The web console's address(es), comma-separated ("https://console.example.com"): a passkey
    # admin's assertion is believed only when made on a page of one of them, for the relying party
    # WARDEN_CONSOLE_RP_ID (unset: the first origin's host name). Unset: no passkey is believed.
    console_origin: str | None = field(default_factory=lambda: _opt("WARDEN_CONSOLE_ORIGIN"))
    console_rp_id: str | None = field(default_factory=lambda: _opt("WARDEN_CONSOLE_RP_ID"))
    # Which admin this command line acts as: its key is $WARDEN_HOME/admin/<id>.pem.
    admin_id: str = field(default_factory=lambda: _env("WARDEN_ADMIN_ID", "local-admin"))
    # Pinned outcome-signing keys of the streams workers and of the signers, same form; unset
    # means the local services' keys under home (the embedded stack).
    worker_keys: str | None = field(default_factory=lambda: _opt("WARDEN_WORKER_KEYS"))
    signer_keys: str | None = field(default_factory=lambda: _opt("WARDEN_SIGNER_KEYS"))
    # The process supervisor's audit-record key (it records restarts), same form.
    supervisor_keys: str | None = field(default_factory=lambda: _opt("WARDEN_SUPERVISOR_KEYS"))
    worker_id: str = field(default_factory=lambda: _env("WARDEN_WORKER_ID", "streams-0"))
    # A streams worker not heard from by the broker for this long loses its partitions to the
    # others. Shorter hands a stalled worker's partitions over sooner, at the risk of
    # a busy machine's worker being taken out of the group for a slow second. Not under 8 on the
    # embedded broker: it holds a rejoining worker's join and sync ~3 s each and counts the session
    # from the join, so a shorter one expires the worker before its first heartbeat, again and again.
    worker_session_timeout_s: float = field(
        default_factory=lambda: float(_env("WARDEN_WORKER_SESSION_TIMEOUT_S", "10"))
    )
    # Intents older than this are refused (INTENT_EXPIRED); it bounds how long a captured intent
    # could be replayed and how long decisions must be remembered.
    intent_max_age_s: int = field(default_factory=lambda: int(_env("WARDEN_INTENT_MAX_AGE_S", "600")))
    root_provider: str = field(default_factory=lambda: _env("WARDEN_ROOT_PROVIDER", "local-dev"))
    roots: RootSettings = field(default_factory=RootSettings)
    allow_dev_root: bool = field(default_factory=lambda: _flag("WARDEN_ALLOW_DEV_ROOT"))
    # The signing-key vault's custody mode, fixed when its first key is provisioned: standard,
    # 2of3_multi_hsm (Shamir over three roots), 2of2_client_custody or 2of3_client_custody.
    key_mode: str = field(default_factory=lambda: _env("WARDEN_KEY_MODE", "standard"))
    signer_id: str = field(default_factory=lambda: _env("WARDEN_SIGNER_ID", "signer-0"))
    # Clients seal client shares only to attested signers unless this says a tee=none one will do.
    allow_unattested_signer: bool = field(default_factory=lambda: _flag("WARDEN_ALLOW_UNATTESTED_SIGNER"))
    attestation: AttestationSettings = field(default_factory=AttestationSettings)
    # Largest record a worker reads; anything bigger goes to the DLQ unread.
    # 2 MiB: an intent for a blob transaction carries its blobs (128 KiB each, as hex), up to six.
    max_record_bytes: int = field(default_factory=lambda: int(_env("WARDEN_MAX_RECORD_BYTES", "2097152")))
    # A broadcast transaction not mined this many seconds after it was sent is replaced with a
    # fee bump (within the policy's ceiling and limits), at most WARDEN_TX_MAX_BUMPS times;
    # after that, or when no bump is allowed, it is reported stuck with the reason.
    tx_replace_after_s: float = field(default_factory=lambda: float(_env("WARDEN_TX_REPLACE_AFTER_S", "60")))
    tx_max_bumps: int = field(default_factory=lambda: int(_env("WARDEN_TX_MAX_BUMPS", "3")))
    log_level: str = field(default_factory=lambda: _env("WARDEN_LOG_LEVEL", "INFO"))
    # The signer loads the KZG trusted setup (seconds of CPU, holding the GIL) while it joins its
    # group, so the first blob transaction does not stop its loop that long; with this set it loads
    # at the first blob instead. For many short-lived signers that sign no blob (the test suite).
    kzg_setup_at_first_blob: bool = field(default_factory=lambda: _flag("WARDEN_KZG_SETUP_AT_FIRST_BLOB"))
    # How long a fetch waits at the broker when no record is ready. The embedded broker holds such
    # a fetch this long even when a record arrives meanwhile, so there it is a floor on every hop,
    # and each empty fetch costs CPU (docs/benchmarks.md: the broker rows). Apache Kafka answers as
    # soon as a record arrives, so there the wait only sets how often an idle consumer asks.
    # Unset: MEMORY_FETCH_WAIT_MS on the embedded broker, KAFKA_FETCH_WAIT_MS on Apache Kafka.
    fetch_wait_setting: int | None = field(default_factory=lambda: _opt_ms("WARDEN_FETCH_WAIT_MS"))
    # Prometheus metrics: a port, "0" (any free one, written under $WARDEN_HOME/run) or "off".
    metrics_port: str = field(default_factory=lambda: _env("WARDEN_METRICS_PORT", "0"))
    # The bearer token `warden mcp --http` accepts, in a file; unset, it generates one at start
    # and writes it under $WARDEN_HOME/agents/<agent>/mcp_token.
    mcp_token_file: str | None = field(default_factory=lambda: _opt("WARDEN_MCP_TOKEN_FILE"))
    # With `warden mcp --http --introspection-endpoint`: how the server authenticates to the
    # authorization server's introspection endpoint, if it asks. The secret is read from a file so
    # that it shows neither in the process list nor in the environment of what the server starts.
    mcp_introspection_client_id: str | None = field(default_factory=lambda: _opt("WARDEN_MCP_INTROSPECTION_CLIENT_ID"))
    mcp_introspection_secret_file: str | None = field(
        default_factory=lambda: _opt("WARDEN_MCP_INTROSPECTION_SECRET_FILE")
    )

    @property
    def max_message_bytes(self) -> int:
        """The largest record a Warden producer sends and a consumer fetches at once, set on every
        producer and consumer together with ``max_record_bytes``: a dead letter carries up to
        ``max_record_bytes`` of what it refers to (base64: 4/3) plus its envelope and must always
        fit, or dead-lettering an oversize record would raise. Never below Kafka's 1 MiB default."""
        return max(1_048_576, self.max_record_bytes * 4 // 3 + 65_536)

    def rpc_url_for(self, chain: str) -> str:
        """The JSON-RPC of ``chain``: WARDEN_RPC_URL_<CHAIN>, else its family's default: WARDEN_RPC_URL
        for an EVM network, `solana_rpc_url` for a Solana one, `bitcoin_rpc_url` for a Bitcoin one."""
        try:
            family = REGISTRY.get(chain).family
        except UnknownChain:
            family = Family.EVM
        by_family = {
            Family.EVM: self.evm_rpc_url,
            Family.SOLANA: self.solana_rpc_url,
            Family.BITCOIN: self.bitcoin_rpc_url,
        }
        return by_family[family](chain)

    def evm_rpc_url(self, chain: str) -> str:
        """The JSON-RPC of EVM network ``chain``: WARDEN_RPC_URL_<CHAIN>, else WARDEN_RPC_URL."""
        return self.rpc_urls.get(chain.upper().replace("-", "_"), self.rpc_url)

    @property
    def surfpool_info(self) -> Path:
        """Where the local Solana node (surfpool) writes the addresses it picked."""
        return self.home / "run" / "surfpool.json"

    def solana_rpc_url(self, chain: str) -> str:
        """The JSON-RPC of Solana network ``chain``: WARDEN_RPC_URL_<CHAIN>, else for
        ``solana-local`` the node the local stack runs. Never the EVM default: a Solana request
        sent to Anvil would be answered by an error at best."""
        url = self.rpc_urls.get(chain.upper().replace("-", "_"))
        if url:
            return url
        if chain == "solana-local":
            try:
                rpc = json.loads(self.surfpool_info.read_text())["rpc"]
                if not isinstance(rpc, str):
                    raise ValueError(f"rpc is {type(rpc).__name__}, not a URL")
                return rpc
            except (OSError, ValueError, KeyError):
                raise NoRpc(
                    f"the local Solana node is not running ({self.surfpool_info} is missing)",
                    "start the stack with `warden up`, or set WARDEN_RPC_URL_SOLANA_LOCAL",
                ) from None
        raise NoRpc(f"no RPC for {chain!r}", f"set WARDEN_RPC_URL_{chain.upper().replace('-', '_')}")

    @property
    def bitcoin_info(self) -> Path:
        """Where the local Bitcoin node (btcd) is described: its JSON-RPC URL with the user and
        password of this start (0600), its P2P address, the funder's address."""
        return self.home / "run" / "bitcoin.json"

    def bitcoin_rpc_url(self, chain: str) -> str:
        """The JSON-RPC of Bitcoin network ``chain``: WARDEN_RPC_URL_<CHAIN> (a node that asks for a
        user and password takes them in the URL: ``http://user:password@host:port``), else for
        ``bitcoin-regtest`` the node the local stack runs. Never the EVM default."""
        url = self.rpc_urls.get(chain.upper().replace("-", "_"))
        if url:
            return url
        if chain == "bitcoin-regtest":
            try:
                rpc = json.loads(self.bitcoin_info.read_text())["rpc"]
                if not isinstance(rpc, str):
                    raise ValueError(f"rpc is {type(rpc).__name__}, not a URL")
                return rpc
            except (OSError, ValueError, KeyError, TypeError):
                raise NoRpc(
                    f"the local Bitcoin node is not running ({self.bitcoin_info} is missing)",
                    "start the stack with `warden up`, or set WARDEN_RPC_URL_BITCOIN_REGTEST",
                ) from None
        raise NoRpc(f"no RPC for {chain!r}", f"set WARDEN_RPC_URL_{chain.upper().replace('-', '_')}")

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def on_kafka(self) -> bool:
        """Whether the broker is Apache Kafka: durable storage is Kafka's log; memory storage is the
        embedded Tansu's."""
        return self.broker_storage == "durable"

    @property
    def fetch_wait_ms(self) -> int:
        if self.fetch_wait_setting is not None:
            return self.fetch_wait_setting
        return KAFKA_FETCH_WAIT_MS if self.on_kafka else MEMORY_FETCH_WAIT_MS

    @property
    def seek_fetch_wait_ms(self) -> int:
        """The fetch wait of a reader that seeks to another partition while it reads (a changelog
        owner reading its appends back). Kafka answers a connection's requests in order, and aiokafka
        sends no fetch to a broker while one to it is in flight, so the seek's fetch waits for the
        fetch in flight to end: at most this long, not `fetch_wait_ms`."""
        return min(self.fetch_wait_ms, KAFKA_SEEK_FETCH_WAIT_MS) if self.on_kafka else self.fetch_wait_ms

    @property
    def signer_state_dir(self) -> Path:
        """This signer's files, one per partition it has owned (`signer.state.PartitionedState`)."""
        return self.home / "signer" / self.signer_id

    @property
    def signer_process(self) -> str:
        """This signer's process name (ready file, metrics, log): "signer" for the first, as a stack
        of one has always named it, else its signer id."""
        return "signer" if self.signer_id == "signer-0" else self.signer_id

    @property
    def worker_process(self) -> str:
        """This streams worker's process name, like `signer_process`."""
        return "streams" if self.worker_id == "streams-0" else self.worker_id

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"


def load() -> Settings:
    """The settings of this process. The chains admins added are not among them: they are
    admin-signed records on warden.chains, which the services follow (runtime.chains) and a
    client reads when it needs one (sdk.records.chains_in_force), never a file of the home."""
    return Settings()


def listen_ports_setting() -> str | None:
    """WARDEN_LISTEN_PORTS, ``low-high``: where a local stack picks its listeners' ports
    (infra.stack.local.listen_ports checks it). Read at each pick, not held in Settings: the ports
    are picked before a stack's Settings exist."""
    return _opt("WARDEN_LISTEN_PORTS")


def environment_with(**variables: str) -> dict[str, str]:
    """This process's environment with ``variables`` added: for a program Warden starts that reads
    none of Warden's settings (a broker tuned by its own variables)."""
    return {**os.environ, **variables}


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment for a process Warden starts: this one's, with ``settings`` written over
    the variables they came from, so the child loads the same settings."""
    env = dict(os.environ)
    env.update(
        {
            "WARDEN_HOME": str(settings.home),
            "WARDEN_BROKER": settings.broker,
            "WARDEN_RPC_URL": settings.rpc_url,
            "WARDEN_TOPOLOGY": settings.topology,
            "WARDEN_LEDGER_HTTP": settings.ledger_http,
            "WARDEN_API_HTTP": settings.api_http,
            "WARDEN_CONSOLE_HTTP": settings.console_http,
            "WARDEN_TEE": settings.tee,
            "WARDEN_ROOT_PROVIDER": settings.root_provider,
            "WARDEN_ALLOW_DEV_ROOT": "1" if settings.allow_dev_root else "0",
            "WARDEN_KEY_MODE": settings.key_mode,
            "WARDEN_SIGNER_ID": settings.signer_id,
            "WARDEN_ALLOW_UNATTESTED_SIGNER": "1" if settings.allow_unattested_signer else "0",
            "WARDEN_MAX_RECORD_BYTES": str(settings.max_record_bytes),
            "WARDEN_WORKER_ID": settings.worker_id,
            "WARDEN_WORKER_SESSION_TIMEOUT_S": str(settings.worker_session_timeout_s),
            "WARDEN_BROKER_STORAGE": settings.broker_storage,
            "WARDEN_INTENT_MAX_AGE_S": str(settings.intent_max_age_s),
            "WARDEN_METRICS_PORT": settings.metrics_port,
            "WARDEN_TX_REPLACE_AFTER_S": str(settings.tx_replace_after_s),
            "WARDEN_TX_MAX_BUMPS": str(settings.tx_max_bumps),
            "WARDEN_KZG_SETUP_AT_FIRST_BLOB": "1" if settings.kzg_setup_at_first_blob else "0",
        }
    )
    for name, url in settings.rpc_urls.items():  # each network's own RPC, as WARDEN_RPC_URL_<NAME>
        env[f"WARDEN_RPC_URL_{name}"] = url
    if settings.fetch_wait_setting is None:  # the child picks its default from its broker storage
        env.pop("WARDEN_FETCH_WAIT_MS", None)
    else:
        env["WARDEN_FETCH_WAIT_MS"] = str(settings.fetch_wait_setting)
    attestation = settings.attestation
    env.update(
        {
            "WARDEN_ATTESTATION_MEASUREMENTS": ",".join(attestation.measurements),
            "WARDEN_ATTESTATION_PRODUCT": attestation.product,
            "WARDEN_ATTESTATION_MINIMUM_TCB": attestation.minimum_tcb,
            "WARDEN_ATTESTATION_ALLOW_DEBUG": "1" if attestation.allow_debug else "0",
            "WARDEN_ATTESTATION_REFUSE_SMT": "1" if attestation.refuse_smt else "0",
            "WARDEN_ATTESTATION_ALLOW_MIGRATION_AGENT": "1" if attestation.allow_migration_agent else "0",
            "WARDEN_ATTESTATION_MAX_AGE_S": str(attestation.max_age_s),
        }
    )
    if attestation.vcek_file:
        env["WARDEN_SEV_VCEK"] = attestation.vcek_file
    env["WARDEN_ADMIN_ID"] = settings.admin_id
    for name, value in (
        ("WARDEN_ADMIN_KEYS", settings.admin_keys),
        ("WARDEN_ADMIN_QUORUM", settings.admin_quorum),
        ("WARDEN_CONSOLE_ORIGIN", settings.console_origin),
        ("WARDEN_CONSOLE_RP_ID", settings.console_rp_id),
    ):
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the length of a block (for libraries that read their own,
    such as SoftHSM2's SOFTHSM2_CONF), then put back what was there."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
