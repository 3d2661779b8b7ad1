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
# A file that promises a latency under attack (its first lines say "// runs alone: why") runs after
# the others, by itself: sibling files competing for the two cores would measure the machine.
alone=()
shared=()
for f in "${files[@]}"; do
  if grep -q '^// runs alone: ' "$f"; then alone+=("$f"); else shared+=("$f"); fi
done
echo "== tests (${#shared[@]} files, then ${#alone[@]} alone)"
# Tests wait on real servers and processes far more than on the CPU: run a few files at once.
status=0
node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-3}" --test-timeout=300000 "${shared[@]}" || status=$?
if ((${#alone[@]} > 0)); then
  node --import tsx --test --test-concurrency=1 --test-timeout=300000 "${alone[@]}" || status=$?
fi
exit "$status"
