#!/bin/sh
# The offline accuracy benchmark of issue #19 on the default agent and the RAG agent, with the
# embedded model on one thread: tool questions, questions that need no tool, and questions over
# docs/ and README.md (examples/data/*_questions.jsonl), scored by scripts/accuracy/analyze.py.
#
#   cargo build --release && scripts/accuracy/measure.sh [OUT_DIR]
#
# SEXTANT (default target/release/sextant, or $CARGO_TARGET_DIR/release/sextant) picks the binary.
set -e
cd "$(dirname "$0")/../.."
S="${SEXTANT:-${CARGO_TARGET_DIR:-target}/release/sextant}"
OUT="${1:-/tmp/sextant-accuracy}"
mkdir -p "$OUT"
export SEXTANT_THREADS=1 SEXTANT_DATA_DIR="$OUT/data"
rm -rf "$OUT/data"
"$S" eval --dataset examples/data/tool_questions.jsonl \
  --scorers tool_called:calculator,is_concise,is_definitive --json > "$OUT/tool.json"
"$S" eval --dataset examples/data/no_tool_questions.jsonl \
  --scorers tool_called:calculator,exact_match,is_concise,is_definitive --json > "$OUT/no_tool.json"
"$S" ingest docs/ README.md --collection kb --json > "$OUT/ingest.json"
"$S" eval --agent configs/agents/rag.toml --dataset examples/data/docs_questions.jsonl \
  --scorers uses_citations,is_grounded,is_concise,is_definitive --json > "$OUT/docs.json"
A=scripts/accuracy/analyze.py
python3 "$A" "$OUT/data" "$OUT/tool.json" examples/data/tool_questions.jsonl tool 200
python3 "$A" "$OUT/data" "$OUT/no_tool.json" examples/data/no_tool_questions.jsonl no_tool 200
python3 "$A" "$OUT/data" "$OUT/docs.json" examples/data/docs_questions.jsonl docs 160
