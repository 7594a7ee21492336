"""Retrieval on the box: `/v1/files` and `/v1/vector_stores` as OpenAI's (the routes are elsewhere), ingestion as
a job (parse, chunk, embed through the embeddings deployment, store), hybrid search (BM25 and vector KNN fused by
reciprocal rank) on an embedded SQLite + sqlite-vec file or on Qdrant. docs/retrieval.md tells the whole story.

- `models`: the objects the API returns; `requests`: the bodies it takes; `filters`: attribute filters.
- `service.RetrievalService`: what the routes call; its `search` is what `file_search` calls (`models.Hit`).
- `files`, `sniff`, `parse`, `tokens`, `chunking`: uploads, their types, their text, token-aware chunks.
- `backend`: the vector backend interface, RRF, the settings; `sqlitevec` and `qdrant`: the two backends.
- `ingest`: one file into one store, resumable (the `vector-store-ingest` job's handler drives it).
- `context`: retrieved chunks as delimited data for a model's prompt.
"""
