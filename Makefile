# Two entry points for a fresh machine:
#   make run   - a venv, the package, and `lapse run` on the embedded defaults
#   make test  - everything the tests need (Debian packages for the lab included), then the suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# pytest-xdist workers for `make test`: one per logical core; TEST_WORKERS=0 runs in one
# process. (`auto` would count physical cores once psutil is installed: 1 on some 2-vCPU VMs.)
TEST_WORKERS ?= logical

.PHONY: run test venv lab-deps bench-deps lint typecheck imports check clean deb config-example \
	catalogs catalogs-update man

# The gettext catalogs of notices and maintenance pages (daemon/locale, domain `lapse`):
# the .po files are the source, kept in git; each .mo is compiled from its .po here and
# never committed, so a fixed translation cannot ship with a stale binary beside it
# (tests/unit/test_catalogs.py fails when a .mo is missing or older than its .po).
CATALOG_SOURCES := $(wildcard daemon/locale/*/LC_MESSAGES/lapse.po)
CATALOGS := $(CATALOG_SOURCES:.po=.mo)

$(BIN)/lapse: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

venv: $(BIN)/lapse catalogs

catalogs: $(CATALOGS)

daemon/locale/%/LC_MESSAGES/lapse.mo: daemon/locale/%/LC_MESSAGES/lapse.po | $(BIN)/lapse
	$(BIN)/pybabel compile --domain lapse --locale $* --input-file $< --output-file $@

# After a template's text changed: the messages extracted again (babel.cfg) into the
# template lapse.pot, and every catalog brought up to it (new messages to translate,
# changed ones marked fuzzy). tests/unit/test_catalogs.py fails until each is translated.
catalogs-update: $(BIN)/lapse
	$(BIN)/pybabel extract --mapping-file babel.cfg --output-file daemon/locale/lapse.pot \
		--no-location --sort-output --project Lapse --copyright-holder "Lapse contributors" .
	$(BIN)/pybabel update --domain lapse --input-file daemon/locale/lapse.pot \
		--output-dir daemon/locale --width 100
	$(MAKE) catalogs

run: venv
	$(BIN)/lapse run

lab-deps:
	bash scripts/install-lab-deps.sh

# lapse_<version>_<arch>.deb here: a venv under /opt/lapse, the unit, the config as a conffile.
deb: catalogs
	bash scripts/build-deb.sh

# lapse.1 and one page per command (lapse-status.1, ...) under build/man, written by
# click-man from the commands' help; `man -l build/man/lapse.1` reads one. The Debian
# package ships them in /usr/share/man/man1.
man: venv
	$(BIN)/python scripts/man_pages.py build/man

# The AWS CLI, the baseline of bench/backup.py, in its own venv: it pins botocore.
bench-deps: venv lab-deps
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet awscli

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy strict over daemon/, tests/ and bench/ alike: [tool.mypy] files in pyproject.toml.
typecheck: venv
	$(BIN)/mypy

# config.example.toml from the schema's descriptions and examples (daemon/config/example.py);
# tests/unit/test_config_example.py fails until it is rewritten after a schema change.
config-example: venv
	$(BIN)/lapse config example > config.example.toml

# The layer contracts of pyproject.toml ([tool.importlinter]), drawn in docs/architecture.md.
imports: venv
	$(BIN)/lint-imports

check: lint typecheck imports

# Each worker starts its own lab services; fixtures keep ports, users, directories and
# databases apart, and lock what the machine has only once (tests/lab/services/common.py).
# worksteal: an idle worker takes queued tests from a busy one, so a run of slow lab tests
# dealt to one worker does not leave the other idle at the end.
test: venv lab-deps check
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .mypy_cache .ruff_cache lapse_*.deb $(CATALOGS) build/man
