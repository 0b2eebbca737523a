"""docker-compose.yml, read the way Docker Compose reads it: Debian's `docker-compose config`
parses and resolves the file, and the tests hold the result to what Warden needs.

No engine runs here, so no image is built and no container started (docs/deployment.md, "What
is checked here"): these tests check the file and the Dockerfile, and run the `keys` service's
program on homes laid out as the file mounts them. Every Warden service runs the image built
from the Dockerfile (`pip install .` at build time, never at start); no two workers or signers
share an id or a home; every service's home gets every service key it believes, the API's
included; every address a service reads from runtime/config.py (derived: the settings whose
default is a loopback address, which in a container reaches nothing, and the modules each
process imports that read them) names a service of the file, or where it listens, published on
127.0.0.1 (the `api` service run as a local process is tests/stack/test_compose_api.py); the
`topics` service makes every topic Warden uses with the partitions and compaction
Warden expects, from the same definitions the embedded stack and the worker use, and
docs/deployment.md counts them as they are.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from gateway.http_api.main import unpinned
from infra.stack import kafka
from infra.stack.local import SERVICES, LocalStack
from rules.stage_table import ALL_GUARDRAIL_STAGES
from runtime.config import Settings
from runtime.trust import CONSOLE_KEY_ID, PinnedServiceKeys, service_key_file
from schemas import topics
from schemas.auth import Role, public_key_hex, read_ed25519
from tests.compose_support import (
    ADMIN_KEYS,
    REPO,
    command,
    compose_config,
    dockerfile,
    loopback_settings,
    resolved,
    run_keys,
    settings_read_by,
)

# The variables docker-compose.yml has always documented; every Warden service keeps them.
DOCUMENTED = (
    "WARDEN_HOME",
    "WARDEN_BROKER",
    "WARDEN_RPC_URL",
    "WARDEN_CLICKHOUSE_URL",
    "WARDEN_TOPOLOGY",
    "WARDEN_ADMIN_KEYS",
    "WARDEN_ROOT_PROVIDER",
    "WARDEN_KEY_MODE",
    "WARDEN_METRICS_PORT",
)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return resolved(tmp_path_factory.mktemp("home"))


def long_running(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Warden processes: each service whose command is `python -m` one of the modules in infra.stack.local.SERVICES."""
    modules = set(SERVICES.values())
    return {
        name: s
        for name, s in config["services"].items()
        if command(s)[:2] == ["python", "-m"] and command(s)[2:3] and command(s)[2] in modules
    }


def role_of(service: dict[str, Any]) -> str:
    return {module: role for role, module in SERVICES.items()}[command(service)[2]]


def home_volume(config: dict[str, Any], service: dict[str, Any]) -> str:
    home = service["environment"]["WARDEN_HOME"]
    mounts = [v.split(":") for v in service.get("volumes", [])]
    named: list[str] = [source for source, target, *_ in mounts if target == home]
    assert len(named) == 1 and named[0] in config["volumes"], f"WARDEN_HOME {home} must be one named volume: {mounts}"
    return named[0]


def test_the_file_needs_the_admin_keys(tmp_path: Path) -> None:
    result = compose_config({"HOME": str(tmp_path)})
    assert result.returncode != 0 and "set WARDEN_ADMIN_KEYS" in result.stderr


def test_every_warden_service_runs_the_one_image_built_from_the_dockerfile(
    config: dict[str, Any],
) -> None:
    built = {name: s for name, s in config["services"].items() if "build" in s}
    warden = long_running(config)
    assert {role_of(s) for s in warden.values()} == set(SERVICES), "every Warden process has a service"
    assert set(warden) <= set(built)
    assert set(built) - set(warden) == {"keys"}
    for name, service in built.items():
        assert Path(service["build"]["context"]) == REPO, name
        assert service["build"].get("dockerfile", "Dockerfile") == "Dockerfile", name
    images = {s["image"] for s in built.values()}
    assert len(images) == 1, images
    others = [name for name, s in config["services"].items() if name not in built and s.get("image") in images]
    assert not others, f"{others} would run the Warden image without building it"


def test_the_dockerfile_installs_the_project_at_build_time_and_nothing_installs_at_start(
    config: dict[str, Any],
) -> None:
    instructions = dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [args for op, args in instructions if op == "RUN"]
    assert any(re.search(r"\bpip install (\S+ )*\.(\s|$)", run) for run in runs), runs
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image runs as a non-root user"
    for name, service in config["services"].items():
        started = " ".join(command(service) + (service.get("entrypoint") or []))
        assert not re.search(r"\bpip\b", started), f"{name} installs at start: {started}"
        for source, _target, *_ in (v.split(":") for v in service.get("volumes", [])):
            assert not (source.startswith("/") and Path(source) == REPO), f"{name} mounts the source tree"


def test_no_two_workers_or_signers_share_an_id_or_a_home(
    config: dict[str, Any],
) -> None:
    warden = long_running(config)
    homes = [home_volume(config, s) for s in warden.values()]
    assert len(homes) == len(set(homes)), homes
    image_env = dict(pair.split("=", 1) for op, args in dockerfile() if op == "ENV" for pair in shlex.split(args))
    volumes = [v for op, args in dockerfile() if op == "VOLUME" for v in json.loads(args)]
    for service in warden.values():
        assert service["environment"]["WARDEN_HOME"] == image_env["WARDEN_HOME"] and image_env["WARDEN_HOME"] in volumes
    for setting, role in (("WARDEN_WORKER_ID", "streams"), ("WARDEN_SIGNER_ID", "signer")):
        members = {name: s for name, s in warden.items() if role_of(s) == role}
        ids = [s["environment"].get(setting) for s in members.values()]
        assert None not in ids, f"every {role} service sets {setting}"
        assert len(ids) == len(set(ids)), ids
        assert len(members) >= 1
    workers = [s for s in warden.values() if role_of(s) == "streams"]
    assert len(workers) >= 2, "the file shows N workers in one group"


def instance(name: str, service: dict[str, Any]) -> str:
    """Under which name `keys` mounts the service's home: a worker's or a signer's id (its key id),
    else the service's name (`console` is the one whose audit key `keys` makes)."""
    env = service["environment"]
    named = {"streams": env.get("WARDEN_WORKER_ID"), "signer": env.get("WARDEN_SIGNER_ID")}.get(role_of(service))
    return named or name


def test_the_keys_service_mounts_every_warden_services_home_under_its_instance(
    config: dict[str, Any],
) -> None:
    keys = config["services"]["keys"]
    mounted = {target: source for source, target, *_ in (v.split(":") for v in keys["volumes"])}
    wanted = {f"/homes/{instance(name, s)}": home_volume(config, s) for name, s in long_running(config).items()}
    assert mounted == wanted
    assert "/homes/api" in mounted and "/homes/console" in mounted


def test_the_keys_service_run_gives_every_home_every_service_key_it_believes_the_apis_included(
    config: dict[str, Any], tmp_path: Path
) -> None:
    """The `keys` program, run on homes laid out as the file mounts them: each worker's and
    signer's private key only in its own home, the console's audit key in its; every Warden
    service's home believes every one of them (the API's too: without them it answered
    `no_outcome_yet` for every outcome, and now refuses to start), and the lines it prints are
    those keys."""
    homes = tmp_path / "homes"
    printed = run_keys(config, homes)
    warden = long_running(config)
    instances: tuple[tuple[Role, str], ...] = (("worker", "WARDEN_WORKER_ID"), ("signer", "WARDEN_SIGNER_ID"))
    owners: dict[tuple[Role, str], str] = {
        (role, key_id): public_key_hex(read_ed25519(service_key_file(homes / key_id, role, key_id)))
        for role, setting in instances
        for key_id in (s["environment"].get(setting) for s in warden.values())
        if key_id
    }
    owners[("supervisor", CONSOLE_KEY_ID)] = public_key_hex(
        read_ed25519(service_key_file(homes / "console", "supervisor", CONSOLE_KEY_ID))
    )
    assert len([o for o in owners if o[0] == "worker"]) >= 2 and len([o for o in owners if o[0] == "signer"]) >= 2
    for name, service in warden.items():
        home = homes / instance(name, service)
        env = service["environment"]
        assert not any(f"WARDEN_{r}_KEYS" in env for r in ("WORKER", "SIGNER", "SUPERVISOR")), name
        believed = PinnedServiceKeys(Settings(home=home))
        for (role, key_id), public in owners.items():
            assert believed.key(role, key_id) == public, f"{name} does not believe {role} {key_id}"
        held = sorted(p.relative_to(home).as_posix() for p in home.rglob("*.pem"))
        own = [key for key in owners if (homes / key[1]) == home or (key[1] == CONSOLE_KEY_ID and name == "console")]
        assert held == sorted(f"services/{role}/{key_id}.pem" for role, key_id in own), name
    api = next(name for name, s in warden.items() if role_of(s) == "api")
    assert unpinned(Settings(home=homes / instance(api, warden[api])), 0) == []
    for role, variable in (("worker", "WARDEN_WORKER_KEYS"), ("signer", "WARDEN_SIGNER_KEYS")):
        pins = sorted(f"{key_id}={public}" for (r, key_id), public in owners.items() if r == role)
        assert f"{variable}={','.join(pins)}" in printed.splitlines()


def published(service: dict[str, Any]) -> set[str]:
    """The service's ports as `config` prints them, without the protocol: host_ip:host:container."""
    return {str(port).removesuffix("/tcp") for port in service.get("ports", [])}


def listen_flag(service: dict[str, Any]) -> str | None:
    """The address its command gives with ``--listen``, if it does."""
    argv = command(service)
    return argv[argv.index("--listen") + 1] if "--listen" in argv else None


def test_every_address_a_warden_service_reads_names_a_service_of_the_file_or_where_it_listens(
    config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a container, runtime/config.py's loopback defaults reach nothing. For each address
    setting (derived: the settings whose default is a loopback address) that a service's process
    reads (derived: its modules and every Warden module they import, as `settings.<name>`), the
    service sets it: where it listens itself (the part `warden up` starts it as listens there,
    `LocalStack.listen_addresses`), on every interface with the port published on 127.0.0.1 (or
    given by ``--listen``); any other, to a service of the file (the ledger's webhook requests
    from the console: `ledger:18123`), never to loopback."""
    for set_here in [v for v in os.environ if v.startswith("WARDEN_")]:
        monkeypatch.delenv(set_here)
    monkeypatch.setenv("WARDEN_HOME", str(tmp_path))
    addresses = loopback_settings()
    assert {"WARDEN_BROKER", "WARDEN_RPC_URL", "WARDEN_LEDGER_HTTP", "WARDEN_API_HTTP"} <= set(addresses)
    listens = {listener.part: listener.setting for listener in LocalStack(Settings()).listen_addresses()}
    names = {
        alias: name
        for name, s in config["services"].items()
        for alias in (name, *s.get("networks", {}).get("default", {}).get("aliases", []))
    }
    warden = long_running(config)
    listening: dict[str, str] = {}  # variable -> the port its service listens on
    for name, service in warden.items():
        variable = listens.get(role_of(service))
        if variable is None:
            continue
        address = listen_flag(service) or service["environment"].get(variable)
        assert address, f"{name} listens where {variable} says, unset: on its container's loopback, out of reach"
        host, _, port = address.rpartition(":")
        assert host == "0.0.0.0", f"{name} listens on {address}: other containers and the host reach 0.0.0.0 only"
        assert f"127.0.0.1:{port}:{port}" in published(service), f"{name}'s port {port} is not published on 127.0.0.1"
        listening[variable] = port
    assert "WARDEN_LEDGER_HTTP" in listening, "the ledger takes webhook requests: it must listen"
    for name, service in warden.items():
        role, env = role_of(service), service["environment"]
        read = settings_read_by(SERVICES[role])
        for variable, attribute in sorted(addresses.items()):
            if attribute not in read or listens.get(role) == variable:
                continue
            value = env.get(variable)
            assert value, f"{name} reads {variable} ({attribute}) and does not set it: it would reach its own loopback"
            for address in value.split(","):
                host, _, port = address.split("://")[-1].split("/")[0].rpartition(":")
                assert host in names, f"{name}: {variable}={value} names {host!r}, no service of the file"
                target = warden.get(names[host])
                if target is not None and listens.get(role_of(target)) == variable:
                    assert port == listening[variable], f"{name}: {variable}={value}, but {host} listens on {port}"


def kafka_nodes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Kafka nodes: the services that run the broker (a KRaft node id), not the one-shot `topics`."""
    return {
        name: s
        for name, s in config["services"].items()
        if str(s.get("image", "")).startswith("apache/kafka:") and "KAFKA_NODE_ID" in s.get("environment", {})
    }


def test_the_warden_services_keep_the_documented_settings_and_name_real_ones(
    config: dict[str, Any],
) -> None:
    settings_source = (REPO / "runtime" / "config.py").read_text()
    kafka = kafka_nodes(config)
    for name, service in long_running(config).items():
        env = service["environment"]
        assert set(DOCUMENTED) <= set(env), f"{name} lacks {set(DOCUMENTED) - set(env)}"
        assert env["WARDEN_ADMIN_KEYS"] == ADMIN_KEYS
        # Every node, so that a client reaches the cluster with any one of them down.
        assert sorted(address.rsplit(":", 1)[0] for address in env["WARDEN_BROKER"].split(",")) == sorted(kafka)
        # Apache Kafka's producers: idempotent (runtime.kafka.service_producer).
        assert env["WARDEN_BROKER_STORAGE"] == "durable", name
        unknown = [v for v in env if v.startswith("WARDEN_") and f'"{v}"' not in settings_source]
        assert not unknown, f"{name} sets variables runtime/config.py never reads: {unknown}"


def test_warden_services_start_after_the_topics_and_keys_exist(
    config: dict[str, Any],
) -> None:
    for name, service in long_running(config).items():
        for one_shot in ("topics", "keys"):
            assert service["depends_on"][one_shot] == {"condition": "service_completed_successfully"}, name
    for node in kafka_nodes(config):
        assert config["services"]["topics"]["depends_on"][node] == {"condition": "service_healthy"}
    assert config["services"]["topics"]["restart"] == "no" and config["services"]["keys"]["restart"] == "no"


def expected_topics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, bool]]:
    """Topic → (partitions, compacted), from Warden's own definitions: schemas.topics and the
    stage topics (as infra.stack.local.create_topics makes them)."""
    wanted = {name: (topics.PARTITIONS, name in topics.COMPACTED) for name in topics.ALL}
    wanted |= {topics.stage_topic(stage): (topics.PARTITIONS, False) for stage in ALL_GUARDRAIL_STAGES}
    return wanted


def test_the_topics_service_creates_every_topic_as_warden_expects_it(
    config: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = config["services"]["topics"]
    assert {service["image"]} == {node["image"] for node in kafka_nodes(config).values()}
    script = "\n".join(command(service)).replace("$$", "$")  # `config` prints $ escaped
    create = re.search(r"create\(\) \{(.*?)\n\}", script, re.S)
    assert create, script
    body = create.group(1)
    for part in (
        "/opt/kafka/bin/kafka-topics.sh",
        "--create --if-not-exists",
        f"--replication-factor {len(kafka_nodes(config))}",
        '--topic "$1"',
        '--partitions "$2"',
        "--config cleanup.policy=$3",
    ):
        assert part in body.replace("$kt", "/opt/kafka/bin/kafka-topics.sh"), part
    created = {
        m[1]: (int(m[2]), m[3] == "compact") for m in re.finditer(r"^create (\S+) (\d+)(?: (compact))?$", script, re.M)
    }
    assert created == expected_topics(tmp_path, monkeypatch)
    # And it checks what the broker holds: a topic left with other partitions stops the deployment.
    assert "--describe" in script and "PartitionCount:" in script and "exit 1" in script


def test_the_deployment_page_counts_the_topics_as_warden_makes_them() -> None:
    """docs/deployment.md's table of topics: the compacted ones by name, the other topics of
    `schemas.topics.ALL` and the stage topics counted, each with Warden's partitions."""
    page = (REPO / "docs" / "deployment.md").read_text()
    rows = re.findall(r"^\| (.+?) \| (\d+) \| (compact|delete) \|$", page, re.M)
    assert len(rows) == 3, rows
    (compacted, _, policy), (others, _, _), (stages, _, _) = rows
    assert policy == "compact" and set(re.findall(r"`(warden\.[a-z._]+)`", compacted)) == topics.COMPACTED
    other = re.search(r"the other (\d+) of `schemas\.topics\.ALL`", others)
    assert other and int(other[1]) == len(topics.ALL) - len(topics.COMPACTED), others
    stage = re.search(r"one per guardrail stage \((\d+);", stages)
    assert stage and int(stage[1]) == len(ALL_GUARDRAIL_STAGES), stages
    assert {int(partitions) for _, partitions, _ in rows} == {topics.PARTITIONS}


def test_prometheus_finds_every_warden_service(
    config: dict[str, Any],
) -> None:
    scrape = yaml.safe_load((REPO / "prometheus.yml").read_text())
    names = {n for job in scrape["scrape_configs"] for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
    for name, service in long_running(config).items():
        aliases = set(service.get("networks", {}).get("default", {}).get("aliases", []))
        assert ({name} | aliases) & names, f"{name} answers to none of the names Prometheus asks for: {names}"
        assert service["environment"]["WARDEN_METRICS_PORT"] == str(
            scrape["scrape_configs"][0]["dns_sd_configs"][0]["port"]
        )


# The properties that name a node, its listeners or its directory: each compose node has its own
# (a host name, a volume), where `warden up` gives 127.0.0.1 ports and $WARDEN_HOME.
PER_NODE = frozenset(
    {
        "node.id",
        "controller.quorum.voters",
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "controller.listener.names",
        "inter.broker.listener.name",
        "log.dirs",
    }
)


def kafka_variable(prop: str) -> str:
    """The apache/kafka image's environment variable for a server property."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def test_the_kafka_nodes_run_the_pinned_version_with_the_settings_of_warden_up(
    config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pom = ElementTree.parse(REPO / "infra" / "kafka" / "pom.xml")
    version = pom.findtext(
        "{http://maven.apache.org/POM/4.0.0}properties/{http://maven.apache.org/POM/4.0.0}kafka.version"
    )
    nodes = kafka_nodes(config)
    assert len(nodes) == 3, "three nodes: one may be lost with every topic still written to two"
    # What a Warden service sends (WARDEN_MAX_RECORD_BYTES is not set in the file): the default.
    monkeypatch.delenv("WARDEN_MAX_RECORD_BYTES", raising=False)
    cluster = kafka.KafkaCluster("-", tuple(kafka.KafkaNode(n, 9092, 9093) for n in (1, 2, 3)))
    wanted = {
        kafka_variable(prop): value
        for prop, value in kafka.properties(Settings(), cluster, cluster.nodes[0]).items()
        if prop not in PER_NODE
    }
    assert wanted["KAFKA_MIN_INSYNC_REPLICAS"] == "2" and wanted["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
    voters = {f"{env['KAFKA_NODE_ID']}@{name}:9093" for name, env in ((n, s["environment"]) for n, s in nodes.items())}
    for name, node in nodes.items():
        assert node["image"] == f"apache/kafka:{version}", name
        env = {key: str(value) for key, value in node["environment"].items()}
        assert {key: env.get(key) for key in wanted} == wanted, name
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters, name
        assert env["KAFKA_ADVERTISED_LISTENERS"].startswith(f"PLAINTEXT://{name}:9092,"), name
