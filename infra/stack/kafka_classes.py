"""Makes the Kafka JVM's class-data-sharing archive (`infra.stack.kafka.class_archive`): the
classes a node loads at its start, parsed and verified once, mapped by every later start (AppCDS, a
dynamic archive of JDK 17).

`./infra/dev.sh` runs ``python -m infra.stack.kafka_classes`` after it installs the jars: one
single-node cluster in a temporary home, started with the nodes' own options and
``-XX:ArchiveClassesAtExit``, ready, its topics made, then stopped (the JVM writes the archive as
it exits). It does nothing where the archive for the installed JVM, jars and options exists.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.stack import kafka
from runtime.config import Settings

# How long the archiving node may take to start, make its topics and stop, on a loaded machine.
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 120.0


def make_archive() -> Path:
    """The archive for the nodes' options, made unless it exists. One maker at a time (a lock file
    beside it); each writes a temporary file of its own, renamed into place only once the JVM has
    written it whole. Archives of other fingerprints are removed: no node would use them."""
    options = kafka.base_jvm_options()
    target = kafka.class_archive(options)
    with open(target.parent / "classes.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
            try:
                _archiving_run(options, partial)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        for stale in target.parent.glob("classes-*.jsa"):
            if stale != target:
                stale.unlink(missing_ok=True)
    return target


def _archiving_run(options: list[str], partial: Path) -> None:
    """One node, formatted, started with ``-XX:ArchiveClassesAtExit``, ready and its topics made,
    then stopped with SIGTERM: the JVM writes the archive as it exits cleanly."""
    from infra.stack.local import create_topics, free_ports, wait_for_port

    home = Path(tempfile.mkdtemp(prefix="warden-kafka-classes-"))
    log_path = home / "kafka.log"
    try:
        port, controller_port = free_ports(2)
        node = kafka.KafkaNode(1, port, controller_port)
        cluster = kafka.KafkaCluster(kafka.new_cluster_id(), (node,))
        path = kafka.properties_path(home, node)
        kafka.write_properties(path, kafka.properties(Settings(home=home), cluster, node))
        kafka.run_format(cluster, node, path, log_path, options)
        argv = [kafka.java_binary(), *options, f"-XX:ArchiveClassesAtExit={partial}", "-cp", kafka.classpath()]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([*argv, "kafka.Kafka", str(path)], stdout=log, stderr=subprocess.STDOUT, cwd=home)
        try:
            for address in (node.address, f"127.0.0.1:{node.controller_port}"):
                wait_for_port(address, START_TIMEOUT_S, "the archiving Kafka node", proc, log_path)
            kafka.wait_for_cluster(cluster, START_TIMEOUT_S, lambda: None if proc.poll() is None else "it exited")
            asyncio.run(create_topics(cluster.bootstrap))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        if not partial.is_file():
            raise kafka.KafkaError(f"the archiving Kafka node exited with code {code} and wrote no archive")
        _check(options, partial, home)
    except BaseException:
        if log_path.exists():
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
        raise
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _check(options: list[str], archive: Path, cwd: Path) -> None:
    """The JVM maps ``archive`` whole (``-Xshare:on`` refuses to run otherwise): a file the JVM
    left short, which would crash every node that maps it, never takes the archive's name."""
    argv = [kafka.java_binary(), *options, f"-XX:SharedArchiveFile={archive}", "-Xshare:on", "-cp", kafka.classpath()]
    done = subprocess.run(
        [*argv, "kafka.tools.StorageTool", "version"], capture_output=True, timeout=120, check=False, cwd=cwd
    )
    if done.returncode != 0:
        why = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
        raise kafka.KafkaError(f"the JVM cannot map the new class archive (exit {done.returncode}): {why}")


if __name__ == "__main__":
    if not kafka.class_archive(kafka.base_jvm_options()).is_file():
        sys.stderr.write("[warden setup] making the class archive of Apache Kafka's JVM\n")
    made = make_archive()
    if "--quiet" not in sys.argv:
        print(made)
