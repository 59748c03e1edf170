"""Key sources: where keys are read from (files, environment, LiteLLM config, ...). I/O lives
here, above the pure key model (``authsvc.keymodel``) and below the config parser.

Every source implements ``KeySource`` (``label``, ``read``, ``watch``, ``change_token``; see
``_protocol`` for the contract and how sources of many keys or with no files fit it). The
config parser builds sources through ``REGISTRY`` (config kind → parser + factories).
"""

from authsvc.sources._dotenv import DotenvSource
from authsvc.sources._env import EnvSource
from authsvc.sources._file import FileSource
from authsvc.sources._fileio import MAX_FILE_BYTES, read_text
from authsvc.sources._keylist import MAX_LIST_BYTES, MAX_LIST_KEYS, offload_parsing
from authsvc.sources._litellm import LITELLM_ENV, litellm_key_header, read_litellm
from authsvc.sources._litellm_db import VirtualKeySource
from authsvc.sources._litellm_db_lookup import MISS, Lookup, set_lookup_share, unknown_message
from authsvc.sources._litellm_db_store import StoreStatus, stores
from authsvc.sources._litellm_source import LiteLLMSource
from authsvc.sources._protocol import (
    KeySource,
    ParseContext,
    SourceKind,
    SourceOutput,
    Watch,
    output,
)
from authsvc.sources._registry import BUILTIN, REGISTRY, Section, SourceRegistry
from authsvc.sources._sha256 import Sha256Source
from authsvc.sources._sha256_file import Sha256FileSource
from authsvc.sources._stat import SETTLED, FileSignature, file_signature
from authsvc.sources._value import ENV_PREFIX, ValueSource

__all__ = [
    "BUILTIN",
    "ENV_PREFIX",
    "LITELLM_ENV",
    "MAX_FILE_BYTES",
    "MAX_LIST_BYTES",
    "MAX_LIST_KEYS",
    "MISS",
    "REGISTRY",
    "SETTLED",
    "DotenvSource",
    "EnvSource",
    "FileSignature",
    "FileSource",
    "KeySource",
    "LiteLLMSource",
    "Lookup",
    "ParseContext",
    "Section",
    "Sha256FileSource",
    "Sha256Source",
    "SourceKind",
    "SourceOutput",
    "SourceRegistry",
    "StoreStatus",
    "ValueSource",
    "VirtualKeySource",
    "Watch",
    "file_signature",
    "litellm_key_header",
    "offload_parsing",
    "output",
    "read_litellm",
    "read_text",
    "set_lookup_share",
    "stores",
    "unknown_message",
]
