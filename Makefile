# Two commands do all the set-up on a fresh machine:
#   make demo   builds the embedded default if needed and starts the app
#   make test   runs the whole test suite
# Both install the requirements (torch pin included) in one pip call, then recsys itself, editable and without
# dependencies, so `import recsys` works from any folder.
PY := .venv/bin/python

.venv/installed: requirements.txt requirements-dev.txt pyproject.toml
	test -d .venv || python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -r requirements-dev.txt
	.venv/bin/pip install -q --no-deps -e .
	touch .venv/installed

.PHONY: demo train test lint
demo: .venv/installed
	$(PY) app.py

train: .venv/installed
	$(PY) scripts/train_and_eval.py

test: .venv/installed
	$(PY) -m pytest

lint: .venv/installed
	.venv/bin/ruff check .
