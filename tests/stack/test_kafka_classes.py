"""The Kafka JVM's class archive (`infra.stack.kafka_classes`): made once per JVM, jars and options,
by one writer at a time, and mapped by the nodes only where it is theirs; an archive the JVM cannot
use is ignored without a word, and one the JVM left short never takes the archive's name.

Each test runs on a class path of its own (links to the installed jars), so the archive the suite's
nodes use is not touched."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from infra.stack import kafka, kafka_classes


def own_libs(root: Path) -> Path:
    libs = root / "kafka" / "libs"
    libs.mkdir(parents=True)
    for jar in kafka.LIBS.glob("*.jar"):
        (libs / jar.name).symlink_to(jar)
    return libs


def run_java(options: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [kafka.java_binary(), *options, "-cp", kafka.classpath(), "kafka.tools.StorageTool", "version"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An archive made for a class path of its own, by two makers at once: (libs, archive)."""
    libs = own_libs(tmp_path_factory.mktemp("classes"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kafka, "LIBS", libs)
        stale = libs.parent / "classes-0000000000000000.jsa"
        stale.write_bytes(b"an archive of another JVM or other jars")
        results: list[Path] = []
        makers = [threading.Thread(target=lambda: results.append(kafka_classes.make_archive())) for _ in range(2)]
        for maker in makers:
            maker.start()
        for maker in makers:
            maker.join()
        assert not stale.exists()
    assert len(results) == 2 and results[0] == results[1]
    return libs, results[0]


def test_the_archive_is_made_once_and_mapped_by_the_nodes(
    made: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    libs, archive = made
    monkeypatch.setattr(kafka, "LIBS", libs)
    assert archive.is_file() and archive.parent == libs.parent
    assert sorted(p.name for p in libs.parent.glob("classes-*")) == [archive.name]  # no partial file left
    assert not list(libs.parent.glob("*.partial"))
    options = kafka.jvm_options()
    assert f"-XX:SharedArchiveFile={archive}" in options
    written = archive.stat().st_mtime_ns
    assert kafka_classes.make_archive() == archive and archive.stat().st_mtime_ns == written
    mapped = run_java([*options, "-Xlog:class+load=info"])
    assert mapped.returncode == 0, mapped.stdout
    assert "source: shared objects file (top)" in mapped.stdout  # Kafka's own classes, from the archive


def test_nodes_start_without_an_archive_of_other_options(
    made: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    libs, archive = made
    monkeypatch.setattr(kafka, "LIBS", libs)
    monkeypatch.setattr(kafka, "HEAP", "256m")
    assert kafka.class_archive(kafka.base_jvm_options()) != archive
    assert not any(option.startswith("-XX:SharedArchiveFile") for option in kafka.jvm_options())


def test_an_archive_the_jvm_cannot_use_is_ignored_silently(
    made: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, archive = made
    libs = own_libs(tmp_path)  # another class path, one jar longer: the archive's does not match it
    (libs / "extra.jar").write_bytes(next(kafka.LIBS.glob("slf4j-api-*.jar")).read_bytes())
    monkeypatch.setattr(kafka, "LIBS", libs)
    kafka.class_archive(kafka.base_jvm_options()).write_bytes(archive.read_bytes())
    options = kafka.jvm_options()
    assert any(option.startswith("-XX:SharedArchiveFile") for option in options)
    ran = run_java(options)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "metadata.version=" in ran.stdout
    assert "cds" not in ran.stdout + ran.stderr and "shared archive" not in (ran.stdout + ran.stderr).lower()


def test_an_archive_left_short_never_takes_the_name(
    made: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    libs, archive = made
    monkeypatch.setattr(kafka, "LIBS", libs)
    short = tmp_path / "short.jsa"
    short.write_bytes(archive.read_bytes()[: 1 << 20])
    with pytest.raises(kafka.KafkaError, match="cannot map the new class archive"):
        kafka_classes._check(kafka.base_jvm_options(), short, tmp_path)
