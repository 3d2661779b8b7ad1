#!/usr/bin/env bash
# The test command (npm test): builds or reuses the real test servers, type-checks, lints, then
# runs every test file with node's test runner through tsx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-servers.sh
echo "== type check"; npx tsc --noEmit
echo "== lint"; npx eslint .
shopt -s globstar nullglob
files=(test/**/*.test.ts goplugins/**/*.test.ts src/**/*.test.ts)
# Tests run the agent from its sources (bin/agent would otherwise prefer a built dist/).
export NS_AGENT_FROM_SOURCE=1
echo "== tests (${#files[@]} files)"
# Tests wait on real servers and processes far more than on the CPU: run a few files at once.
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-3}" --test-timeout=300000 "${files[@]}"
