"""Retrieval: keyword and dense search over the visible chunks, fused, optionally reranked."""
