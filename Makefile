# kvorum — every target rests on `make install`, which is idempotent.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SEEDS  ?= 0-9999
NODES  ?= 3

.PHONY: install deps proto test lint typecheck unit sim bench run clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check kvorum tests bench
	$(VENV)/bin/ruff format --check kvorum tests bench

typecheck: install
	$(VENV)/bin/mypy

# On CI, short tracebacks: the failing line of every failure fits in what the CI log keeps.
unit: install
	$(VENV)/bin/pytest -n 2 $(if $(CI),--tb=short) tests

test: deps lint typecheck unit

# Debian packages the tests drive: the real etcdctl and etcd 3.4 (no-op when present).
deps:
	scripts/ensure-debian-packages

# Fault-injection runs (tests/faults, docs/faults.md): DURATION seconds of faults per run, 3- and
# 5-member clusters, etcd and kvorum, a mixed nemesis; SEED replays a schedule. Needs root (netns).
# One summary line per run is appended to FAULTS_RESULTS.
DURATION ?= 60
SEED     ?=
FAULTS_RESULTS ?= /tmp/kvorum-faults-results.jsonl
.PHONY: faults
faults: deps install
	KVORUM_FAULTS_DURATION=$(DURATION) KVORUM_FAULTS_SEED=$(SEED) \
		KVORUM_FAULTS_RESULTS=$(FAULTS_RESULTS) $(VENV)/bin/pytest -n 2 tests/faults

# Regenerate kvorum/api/pb from kvorum/api/proto (the result is committed).
proto: install
	$(PY) scripts/gen_proto.py

sim: install
	$(PY) -m kvorum.sim --seeds $(SEEDS) --nodes $(NODES)

# Benchmarks print their figures and the command; docs/benchmarks.md records them.
bench: install
	$(PY) bench/raft_core.py
	$(PY) bench/wal.py --seconds 3
	$(PY) bench/mvcc.py

# kvorum against real etcd: same client, one run, 1 and 3 members, py-spy profile of kvorum's
# leader if py-spy is in the venv (about 6 minutes; figures in docs/benchmarks.md).
.PHONY: bench-server
bench-server: install
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(PY) bench/server.py --rounds 3 --max-seconds 5

# Watch and Lease against real etcd, 1 member each, same client: events/s to 1 and 1,000
# watchers, puts beside a stalled watcher, keep-alives/s; 2 rounds (about 3 minutes; figures
# in docs/benchmarks.md).
.PHONY: bench-watch
bench-watch: install
	$(PY) bench/watch_lease.py --rounds 2 --max-seconds 5 --stall-seconds 5

# The cost of TLS and of auth beside real etcd, one run: put and get throughput plain, TLS,
# auth, TLS+auth, 1 member each, 3 rounds (about 10 minutes; figures in docs/benchmarks.md).
.PHONY: bench-security
bench-security: install
	$(PY) bench/security.py --rounds 3 --max-seconds 4

# One member named `default`, data in $(RUN_DIR)/default.etcd, clients on 127.0.0.1:2379 (etcd's
# default listen URL says localhost, which may also resolve to ::1; pin the IPv4 loopback).
RUN_DIR ?= .
run: install
	cd $(RUN_DIR) && exec $(abspath $(VENV))/bin/kvorum \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379

clean:
	rm -rf $(VENV) build *.egg-info
