# Set-up is part of every target: a fresh machine needs Python 3.11, Node, Terraform and make
# (and python3.13, the functions' runtime: it compiles the bundle's byte code, and `make lambda-imports` uses it).
SHELL := /bin/bash
PIPENV_VERSION := 2026.10.3
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_IGNORE_VIRTUALENVS := 1
export PIPENV_VERBOSITY := -1
# The package index: the user's, else pip's own default (the lock file records no host).
export PIPENV_INDEX_URL ?= $(shell python3 -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')
# Offline Terraform provider mirror; `terraform init` downloads the provider where it does not exist.
export TF_PLUGIN_MIRROR ?= /opt/tf-plugins
PYTHON := .venv/bin/python
LINTED := lambdas client stacks tools sparkle_sandbox tests main.py

.PHONY: bootstrap preflight verify settle settlement-report bench-ledger install test test-unit test-integration test-infra mutate mutate-sample lint synth snapshots openapi local demo sandbox bench bench-local bench-synth lambda-imports clean

install: .venv/.installed scanner/.venv/.installed

.venv/.installed: Pipfile.lock
	python3 -m pip install --quiet --disable-pip-version-check "pipenv==$(PIPENV_VERSION)"
	pipenv sync --categories "packages dev-packages lambda"
	touch $@

# checkov in a virtualenv of its own (scanner/Pipfile says why); tests/test_terraform.py runs it from there.
scanner/.venv/.installed: scanner/Pipfile.lock
	python3 -m pip install --quiet --disable-pip-version-check "pipenv==$(PIPENV_VERSION)"
	PIPENV_PIPFILE=scanner/Pipfile pipenv sync
	touch $@

# Test lanes (tests/lanes.py assigns each test one): unit, integration, infra. `make test` runs all three at once.
TEST_WORKERS ?= 4
test: install  ## every lane, in parallel (TEST_WORKERS processes), the slowest modules first
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadscope

test-unit: install  ## fakes, the domain, the edge and the SDK, in this process alone: after each change
	$(PYTHON) -m pytest -m unit

test-integration: install  ## moto, the Sparkle sandbox, other processes and sockets
	$(PYTHON) -m pytest -m integration

test-infra: install  ## synth, Terraform and checkov (answers kept in .cache/infra), the deploy and `make local`
	$(PYTHON) -m pytest -m infra

lint: install  ## ruff format check and lint (settings in pyproject.toml); mypy, strict on lambdas/ and client/
	$(PYTHON) -m ruff format --check $(LINTED)
	$(PYTHON) -m ruff check $(LINTED)
	$(PYTHON) -m mypy

synth: install
	$(PYTHON) main.py

snapshots: install  ## rewrite the synth snapshots after a deliberate change; review the diff
	UPDATE_SNAPSHOTS=1 $(PYTHON) -m pytest -q tests/test_snapshot.py

openapi: install  ## regenerate docs/openapi.json and lambdas/request_bodies.py from the routes and models
	$(PYTHON) -m tools.openapi
	$(PYTHON) -m tools.request_bodies

local: install
	$(PYTHON) -m tools.local

bootstrap: install  ## the S3 bucket of ENV's Terraform state (ENV=prod), once per account, before the first deploy
	$(PYTHON) -m tools.bootstrap_state --environment $(ENV)

preflight: install  ## what would fail first in ENV's account (ENV=prod): quota, secret, gateway, certificate
	$(PYTHON) -m tools.preflight --environment $(ENV)

verify: install  ## the ledger proves itself: ENV's (ENV=prod, AWS credentials), else a running `make local`'s
	$(if $(ENV),$(PYTHON) -m tools.verify --environment $(ENV),AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	  $(PYTHON) -m tools.verify --environment dev --endpoint-url http://127.0.0.1:$${PAYMENTS_EMULATOR_PORT:-5000})

bench-ledger: install  ## payments/s for 1 and 8 writers on one merchant, head retries per payment, verify entries/s
	$(PYTHON) -m tools.bench_ledger

settle: install  ## one settlement import now, against a running `make local`; prints its counts
	$(PYTHON) -m tools.settle

settlement-report: install  ## FROM=YYYY-MM-DD TO=YYYY-MM-DD [CSV=path]: ENV's settlements, else `make local`'s
	$(if $(ENV),$(PYTHON) -m tools.settlement_report --environment $(ENV),AWS_ACCESS_KEY_ID=local \
	  AWS_SECRET_ACCESS_KEY=local $(PYTHON) -m tools.settlement_report --environment dev \
	  --endpoint-url http://127.0.0.1:$${PAYMENTS_EMULATOR_PORT:-5000}) --from $(FROM) --to $(TO) $(if $(CSV),--csv $(CSV))

demo: install  ## against a running `make local`
	$(PYTHON) -m tools.demo

sandbox: install  ## the Sparkle sandbox on 127.0.0.1:$${SPARKLE_PORT:-4010}
	$(PYTHON) -m sparkle_sandbox

mutate: install  ## mutation score of the domain, use cases, edge and adapters (long: CI does not run it)
	MODEL_EXAMPLES=40 $(PYTHON) -m mutmut run --max-children 2
	$(PYTHON) -m tools.mutation_score --judged docs/mutation-survivors.tsv

SAMPLE ?= 300
SEED ?= 0
mutate-sample: install  ## after a mutate stopped for time: a seeded sample of the mutants not run, and the estimate
	$(PYTHON) -m tools.mutation_score --draw $(SAMPLE) --seed $(SEED) > mutants/sample.txt
	MODEL_EXAMPLES=40 $(PYTHON) -m mutmut run --max-children 2 $$(cat mutants/sample.txt)
	$(PYTHON) -m tools.mutation_score --sample mutants/sample.txt --judged docs/mutation-survivors.tsv

bench: install  ## handler cold imports; KMS calls and DynamoDB requests per payment
	$(PYTHON) -m tools.bench_service

lambda-imports: install  ## each handler imported from the bundle by the functions' Python, as Lambda loads it
	$(PYTHON) -m tools.lambda_runtime

bench-local: install  ## starts its own local stack on free ports
	$(PYTHON) -m tools.bench_local

bench-synth: install
	$(PYTHON) -m tools.bench_synth

clean:
	rm -rf .venv scanner/.venv cdktf.out build .cache
