"""Indexes beside the store: BM25 keyword postings and dense vectors, in segments."""
