#!/usr/bin/env bash
# The retrieval benchmark (docs/benchmarks.md): SQuAD v2 answerable queries in BEIR layout, then 100,000 synthetic
# chunks. Run from anywhere; uses the repository's .venv when there is one. JSON reports land in bench/out/.
set -euo pipefail; cd "$(dirname "$0")/.."; PATH="$PWD/.venv/bin:$PATH"; data=../shared/data/squad_v2_dev_half/beir_format; mkdir -p bench/out
if [ -d "$data" ]; then ragtune bench retrieval --beir "$data" --json > bench/out/retrieval-beir.json; else echo "bench/retrieval.sh: $data not found; skipping the BEIR benchmark" >&2; fi
ragtune bench retrieval --scale "${SCALE:-100000}" --json > bench/out/retrieval-scale.json
