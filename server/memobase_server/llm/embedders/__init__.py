"""Embedder adapters: `local_minilm.LocalMiniLMEmbedder` (all-MiniLM-L6-v2 int8 ONNX shipped in a
PyPI package, no download at run time) and `openai_compat.OpenAIEmbedder` (any
OpenAI-compatible embeddings endpoint). Import the module you use."""
