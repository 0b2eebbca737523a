#!/usr/bin/env bash
# Set up everything Warden needs on this machine (idempotent), then run a command:
#   ./infra/dev.sh demo      the main job: the scripted pipeline on the embedded stack
#   ./infra/dev.sh test      the test suite (add -m "not stack" for the unit tests alone: no process started)
#   ./infra/dev.sh lint      ruff: lint and format check (CI runs it, then the tests)
#   ./infra/dev.sh <args>    any other `warden` command, e.g. `./infra/dev.sh up`
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[warden setup] %s\n' "$*" >&2; }

# The distribution's python3.11 first: Debian's is built with PGO and LTO and linked statically,
# which a pyenv build is not by default, and Warden's processes are plain Python work that runs
# measurably faster on it. Any 3.11+ with venv otherwise; PYTHON=/path/to/python overrides.
if [ -z "${PYTHON:-}" ]; then
  for candidate in /usr/bin/python3.11 "$(command -v python3.11 || true)" "$(command -v python3 || true)"; do
    if [ -x "$candidate" ] && "$candidate" -c 'import ensurepip, venv' >/dev/null 2>&1; then
      PYTHON=$candidate
      break
    fi
  done
  PYTHON=${PYTHON:-python3}
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "Python >= 3.11 is required; found $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11"
  exit 1
fi

# Debian packages: SoftHSM2 (the PKCS#11 root of trust the custody tests use), OVMF (a real
# firmware image with SEV-SNP metadata, /usr/share/ovmf/OVMF.fd, for `warden attest measure` and its tests).
missing=()
command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
[ -f /usr/share/ovmf/OVMF.fd ] || missing+=(ovmf)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)  # parses docker-compose.yml: tests/stack/test_compose.py
# Go and golang.org/x/mod (sumdb/note, sumdb/tlog): the independent verifier of the ledger's
# checkpoints, cosignatures and proofs (tests/oracle/tlogcheck, built in GOPATH mode).
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[ -d /usr/share/gocode/src/golang.org/x/mod/sumdb/note ] || missing+=(golang-golang-x-mod-dev)
# PostgreSQL (initdb, pg_ctl, postgres), for a broker log in tables: `warden bench broker-check`.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# A JDK and Maven: Apache Kafka, the durable stack's broker, runs from its jars (infra/kafka/pom.xml).
command -v java >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# Chromium, which Playwright drives in the console's browser tests (never a downloaded browser).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} (apt)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing[*]} (as root: apt-get install ${missing[*]})"
  fi
fi

# Python dependencies into .venv/, reinstalled when pyproject.toml changes.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.warden-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing Python dependencies (pip)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,demo]'
  touch "$stamp"
fi

# Apache Kafka: the jars infra/kafka/pom.xml pins, with their dependencies, from Maven Central into
# .venv/kafka/libs (Maven's own cache, ~/.m2, keeps the downloads), again when the pom changes.
kafka_stamp=.venv/kafka/.installed
if [ ! -f "$kafka_stamp" ] || [ infra/kafka/pom.xml -nt "$kafka_stamp" ]; then
  say "installing Apache Kafka (Maven Central, infra/kafka/pom.xml)"
  rm -rf .venv/kafka/libs
  mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/.venv/kafka/libs" >/dev/null
  touch "$kafka_stamp"
fi
# Its JVM's class-data-sharing archive (infra/stack/kafka_classes.py), kept with the jars, made by one
# node's start and stop where the installed JDK, jars and JVM options have none yet (~10 s); every
# node start maps it (about a third less CPU a start). Without it the nodes start as well, only slower.
if command -v java >/dev/null 2>&1; then
  .venv/bin/python -m infra.stack.kafka_classes --quiet || say "no class archive for Apache Kafka's JVM (above: why); its nodes start without one"
fi

# Anvil: the npm package's Linux binary, unless anvil is already on PATH.
if ! command -v anvil >/dev/null 2>&1 && ! ls .venv/npm/node_modules/@foundry-rs/anvil-*/bin/anvil >/dev/null 2>&1; then
  say "installing Anvil (npm @foundry-rs/anvil)"
  mkdir -p .venv/npm
  npm install --silent --no-audit --no-fund --prefix .venv/npm @foundry-rs/anvil@1.7.1 >/dev/null
fi

# surfpool: the local Solana network (LiteSVM) as a native Node module, hosted by infra/stack/surfpool.js.
SURFPOOL_VERSION=1.5.0
if [ "$(node -p "require('./.venv/npm/node_modules/@solana/surfpool-linux-x64-gnu/package.json').version" 2>/dev/null)" != "$SURFPOOL_VERSION" ]; then
  say "installing surfpool (npm @solana/surfpool-linux-x64-gnu)"
  mkdir -p .venv/npm
  npm install --silent --no-audit --no-fund --save-exact --prefix .venv/npm "@solana/surfpool-linux-x64-gnu@$SURFPOOL_VERSION" >/dev/null
fi

# btcd: the local Bitcoin node (regtest, infra/stack/local.py's "bitcoin"), built by Go from the Go
# module proxy into .venv/bin-go (Go's own caches keep the download and the build), again when the
# version pinned here changes.
BTCD_VERSION=v0.26.2
if [ "$(cat .venv/bin-go/.btcd-version 2>/dev/null)" != "$BTCD_VERSION" ] || [ ! -x .venv/bin-go/btcd ]; then
  say "building btcd $BTCD_VERSION (go install github.com/btcsuite/btcd)"
  mkdir -p .venv/bin-go
  GO111MODULE=on GOBIN="$PWD/.venv/bin-go" go install "github.com/btcsuite/btcd@$BTCD_VERSION"
  echo "$BTCD_VERSION" > .venv/bin-go/.btcd-version
fi

# solc-js: the Solidity compiler of infra/contracts (python -m infra.contracts.build), pinned exactly so
# that a fresh compile gives the committed artifacts byte for byte.
SOLC_VERSION=0.8.30
if [ "$(node -p "require('./.venv/npm/node_modules/solc/package.json').version" 2>/dev/null)" != "$SOLC_VERSION" ]; then
  say "installing solc (npm solc)"
  mkdir -p .venv/npm
  npm install --silent --no-audit --no-fund --save-exact --prefix .venv/npm "solc@$SOLC_VERSION" >/dev/null
fi

# The TypeScript client of the HTTP API (sdk/typescript): its locked npm dependencies (openapi-fetch;
# openapi-typescript, TypeScript and viem for its build and tests), then its build.
if [ ! -d sdk/typescript/node_modules ] || [ sdk/typescript/package-lock.json -nt sdk/typescript/node_modules ]; then
  say "installing the TypeScript client's dependencies (npm ci)"
  npm ci --silent --no-audit --no-fund --prefix sdk/typescript >/dev/null
fi
if [ ! -f sdk/typescript/dist/index.js ] || [ -n "$(find sdk/typescript/src -newer sdk/typescript/dist/index.js)" ]; then
  say "building the TypeScript client (tsc)"
  npm run --silent --prefix sdk/typescript build
fi

case "${1:-}" in
  # Five workers, a test file each at a time (a file's tests share its fixtures and its stack), the
  # files in the order tests/stack/conftest.py sorts them, longest first (xdist would put the files
  # with the most tests first): the long ones run side by side and the short ones fill in behind.
  # Much of a stack test is waiting on its processes (docs/benchmarks.md has four against five).
  # `-n 0` runs in this process instead.
  test) shift; exec .venv/bin/python -m pytest -n 5 --dist loadfile --no-loadscope-reorder "$@" ;;
  # ruff (lint and format), vulture (dead code it is sure of), the import contracts ([tool.importlinter]),
  # then mypy ([tool.mypy] in pyproject.toml: strict for every package).
  lint) shift; .venv/bin/ruff check "$@" . && .venv/bin/ruff format --check "$@" . \
    && .venv/bin/vulture evm svm btc schemas runtime rules streams signer ledger sdk gateway infra tests --min-confidence 80 \
    && .venv/bin/lint-imports --no-cache && exec .venv/bin/mypy ;;
  "") exec .venv/bin/warden --help ;;
  *) exec .venv/bin/warden "$@" ;;
esac
