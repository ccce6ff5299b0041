#!/usr/bin/env bash
# Build the book into _build/html, failing on any Sphinx warning.
# Uses the jupyter-book of the active environment, else the repository's .venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

JB="$(command -v jupyter-book || true)"
if [[ -z "$JB" && -x .venv/bin/jupyter-book ]]; then JB=.venv/bin/jupyter-book; fi
[[ -n "$JB" ]] || { echo "build_book: jupyter-book not found (install the book dependencies)" >&2; exit 1; }

bash scripts/vendor_mathjax.sh
# Sphinx copies html_extra_path only when some page is rebuilt: if the vendored MathJax and
# its copy in the build differ (new vendoring, or a deleted copy), rebuild everything.
ALL=()
if ! diff -rq _vendor/mathjax _build/html/mathjax >/dev/null 2>&1; then ALL=(--all); fi
"$JB" build . -W -n --keep-going "${ALL[@]}" "$@"
