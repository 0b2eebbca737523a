# The image of every Warden process in docker-compose.yml: the streams workers, the signers,
# the ledger sink, and the one-shot `keys` service. The project is installed here, at build
# time; a container starts the installed code and fetches nothing (docs/deployment.md).
FROM python:3.11-slim

# PYTHONSAFEPATH: `python -m <module>` imports the installed package, never a file in the working directory.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONSAFEPATH=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns WARDEN_HOME, a volume: each instance mounts a volume of its own there.
RUN groupadd --system --gid 10001 warden \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/warden warden \
    && mkdir -p /var/lib/warden \
    && chown warden:warden /var/lib/warden

WORKDIR /src
# What `pip install .` reads: the build definition and the five packages it names
# ([tool.setuptools.packages.find] in pyproject.toml), with their package data.
COPY pyproject.toml ./
COPY evm ./evm
COPY svm ./svm
COPY btc ./btc
COPY schemas ./schemas
COPY runtime ./runtime
COPY rules ./rules
COPY streams ./streams
COPY signer ./signer
COPY ledger ./ledger
COPY sdk ./sdk
COPY gateway ./gateway
COPY infra ./infra
RUN pip install . \
    && python -c "import streams.topology, signer.main, ledger.sink, infra.cli" \
    && rm -rf /src

ENV WARDEN_HOME=/var/lib/warden
VOLUME ["/var/lib/warden"]
WORKDIR /var/lib/warden
USER 10001:10001

# Each compose service names its process (`python -m streams.topology`, `python -m signer.main`,
# `python -m ledger.sink`); without one the container runs the `warden` CLI.
CMD ["warden", "--help"]
