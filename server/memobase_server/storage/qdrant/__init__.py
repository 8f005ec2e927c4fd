"""GistIndex adapters on Qdrant: `edge.EdgeGistIndex` (the engine in process, the single-node
default) and `client.QdrantGistIndex` (qdrant-client: a Qdrant server by URL, or local mode).
Import the module you use: each pulls in its own native library."""
