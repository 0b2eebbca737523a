"""`warden bench broker-check`'s command line: which broker the checks run on (Apache Kafka, or Tansu
on a storage), how many, and where growth is measured; a bad value is refused naming the option
and what it takes. The checks themselves run in tests/stack/test_broker_check.py."""

from __future__ import annotations

import pytest

from infra.bench import broker_check


def test_kafka_is_the_default_and_growth_compares_it_with_tansu_on_memory() -> None:
    args, growth, _ = broker_check._arguments([])
    assert (args.storage, args.brokers, growth) == ("kafka", 1, ["kafka", "memory"])


@pytest.mark.parametrize("brokers", [1, 2, 3])
def test_kafka_takes_one_to_three_nodes(brokers: int) -> None:
    args, growth, _ = broker_check._arguments(["--storage", "kafka", "--brokers", str(brokers), "--growth", "none"])
    assert (args.storage, args.brokers, growth) == ("kafka", brokers, [])


def test_growth_takes_any_of_the_storages_the_checks_take() -> None:
    _, growth, _ = broker_check._arguments(["--growth", "memory,kafka,postgres"])
    assert growth == ["memory", "kafka", "postgres"]
    assert set(broker_check.STORAGES) == {"kafka", "memory", "postgres"}


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--brokers", "4"], "--brokers must be 1 to 3, got 4"),
        (["--brokers", "0"], "--brokers must be 1 to 3, got 0"),
        (["--growth", "kafka,s3"], "--growth takes kafka, memory, postgres or 'none', got 'kafka,s3'"),
        (["--storage", "s3"], "argument --storage: invalid choice: 's3'"),
        (["--samples", "0"], "--samples, --budget and every mark must be positive"),
    ],
)
def test_a_bad_value_is_refused_naming_it(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        broker_check._arguments(argv)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err


def test_each_broker_is_described_with_its_version() -> None:
    assert broker_check._describe("kafka", "unused").startswith("Apache Kafka 4.")
