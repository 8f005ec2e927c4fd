"""A scripted OpenAI-compatible model server for tests and local trials.

It answers `POST /v1/chat/completions` for the pipeline steps deterministically (see
`steps`), `POST /v1/embeddings` with hashed bag-of-words vectors (see `vectors`) and
`GET /v1/models`; faults and statistics are driven over HTTP under `/_scripted/`.
Run it alone with ``python -m memobase_server.devtools.scripted_llm --port 8021``.
"""

from memobase_server.devtools.scripted_llm.app import (
    STEP_HEADER,
    ScriptedLLM,
    ScriptedLLMServer,
    build_scripted_llm_app,
    serve,
)
from memobase_server.devtools.scripted_llm.state import FaultConfig, ScriptedState

__all__ = [
    "STEP_HEADER",
    "FaultConfig",
    "ScriptedLLM",
    "ScriptedLLMServer",
    "ScriptedState",
    "build_scripted_llm_app",
    "serve",
]
