"""JSON-LD for Data Integrity: a document loader over bundled contexts, RDF Dataset Canonicalization (RDFC-1.0,
which PyLD calls URDNA2015) and a strict expansion that plays the part of jsonld.js "safe mode".

* **No network.** ``ContextLoader`` serves only the contexts it was given (the package's bundled set in
  ``crypto/contexts/`` plus any the caller adds); any other URL raises ``JsonLdError`` ("unknown context"). The
  only I/O in this module is reading those bundled files, lazily, once.
* **Pins.** A loader may pin URLs to a ``digestSRI`` (``sha384-…``/``sha256-…`` of the exact bytes, as VC 2.0's
  ``relatedResource``); a pinned URL whose bundled bytes hash differently is refused. The federation pins its
  credit-bank context this way in the membership document.
* **Bounded.** Canonicalization refuses datasets with more than ``MAX_QUADS`` quads or ``MAX_BLANK_NODES`` blank
  nodes, and stops a crafted ("poison") graph once N-degree hashing has done ``MAX_NDEGREE_CALLS`` steps, so a
  document posted by anyone cannot pin a CPU (RDFC-1.0 §4.4 asks implementations to guard against this).
* **Safe mode.** ``expand_safe`` expands with every dropped property recorded (an undefined term), and then
  rejects relative IRIs in ``@id``/``@type`` and unknown ``@type`` terms — what jsonld.js calls safe mode. A
  document passes only with nothing lost.

Each loader owns its resolved-context cache (PyLD's default cache is process-wide and keyed by URL only).
PyLD is imported on first use (it costs ~0.1 s), so importing ``crypto`` stays cheap.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from functools import cache

from crypto.errors import JsonLdError

__all__ = [
    "BUNDLED",
    "MAX_BLANK_NODES",
    "MAX_NDEGREE_CALLS",
    "MAX_QUADS",
    "ContextLoader",
    "bundled_contexts",
    "canonicalize_rdfc",
    "canonicalize_rdfc_small",
    "default_loader",
    "digest_sri",
    "expand_safe",
]

# URL → file in crypto/contexts/ (attribution: crypto/contexts/README.md).
BUNDLED: dict[str, str] = {
    "https://www.w3.org/ns/credentials/v2": "credentials-v2.jsonld",
    "https://www.w3.org/ns/did/v1": "did-v1.jsonld",
    "https://w3id.org/security/multikey/v1": "multikey-v1.jsonld",
    "https://w3id.org/security/data-integrity/v1": "data-integrity-v1.jsonld",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json": "ob-v3p0-3.0.3.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.2.json": "ob-v3p0-3.0.2.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.1.json": "ob-v3p0-3.0.1.json",
    "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json": "ob-v3p0-extensions.json",
    "https://purl.imsglobal.org/spec/clr/v2p0/context-2.0.1.json": "clr-v2p0-2.0.1.json",
    "https://w3id.org/yangtze-credit-bank/v2": "yangtze-credit-bank-v2.jsonld",
}

MAX_QUADS = 20_000
MAX_BLANK_NODES = 5_000
MAX_NDEGREE_CALLS = 20_000

_bundle_lock = threading.Lock()
_bundle: dict[str, bytes] | None = None


def bundled_contexts() -> dict[str, bytes]:
    """The bundled contexts' exact bytes by URL (read once from the package)."""
    global _bundle
    with _bundle_lock:
        if _bundle is None:
            folder = resources.files("crypto") / "contexts"
            _bundle = {url: (folder / name).read_bytes() for url, name in BUNDLED.items()}
        return dict(_bundle)


def digest_sri(data: bytes, algorithm: str = "sha384") -> str:
    """A Subresource Integrity string (``sha384-<base64>``) of ``data``, as VC 2.0 ``digestSRI`` uses."""
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise ValueError(f"unsupported SRI algorithm {algorithm!r}")
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def _sri_matches(data: bytes, sri: str) -> bool:
    algorithm, _, _value = sri.partition("-")
    try:
        return digest_sri(data, algorithm) == sri
    except ValueError:
        return False


class ContextLoader:
    """A PyLD document loader serving only known contexts (never the network).

    ``documents`` maps URL → bytes or parsed JSON; ``pins`` maps URL → digestSRI that the served bytes must
    match. Call it as PyLD does: ``loader(url, options)``.
    """

    def __init__(self, documents: Mapping[str, bytes | dict] | None = None, *,
                 pins: Mapping[str, str] | None = None) -> None:
        raw = bundled_contexts() if documents is None else dict(documents)
        self._documents: dict[str, dict] = {}
        self._digests: dict[str, bytes] = {}
        for url, value in raw.items():
            data = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
            self._digests[url] = data
            self._documents[url] = json.loads(data)
        for url, sri in (pins or {}).items():
            if url in self._digests and not _sri_matches(self._digests[url], sri):
                # keep it out: processing a document that uses it must fail rather than use other bytes
                del self._documents[url]
        self._pins = dict(pins or {})
        from cachetools import LRUCache

        self._cache = LRUCache(maxsize=256)
        self._canonical = LRUCache(maxsize=64)  # proof configurations' RDFC-1.0 forms (canonicalize_rdfc_small)
        self._canonical_lock = threading.Lock()

    def with_documents(self, extra: Mapping[str, bytes | dict], *, pins: Mapping[str, str] | None = None
                       ) -> ContextLoader:
        """A new loader serving this one's documents plus ``extra``."""
        merged: dict[str, bytes | dict] = dict(self._digests)
        merged.update(extra)
        return ContextLoader(merged, pins={**self._pins, **(pins or {})})

    @property
    def urls(self) -> frozenset[str]:
        return frozenset(self._documents)

    def bytes_of(self, url: str) -> bytes:
        if url not in self._documents:
            raise JsonLdError(f"unknown context {url}")
        return self._digests[url]

    def __call__(self, url: str, options: Any = None) -> dict:
        document = self._documents.get(url)
        if document is None:
            reason = "its bytes do not match the pinned digest" if url in self._pins else "not bundled"
            raise _pyld().JsonLdError(f"refusing to load context {url}: {reason}", "jsonld.LoadDocumentError",
                                    code="loading document failed")
        return {"contextUrl": None, "documentUrl": url, "document": document, "contentType": "application/ld+json"}

    def options(self, **extra: Any) -> dict:
        from pyld.context_resolver import ContextResolver

        return {"documentLoader": self, "contextResolver": ContextResolver(self._cache, self),
                "base": None, **extra}


_default: ContextLoader | None = None


def default_loader() -> ContextLoader:
    """The loader over the bundled contexts alone (shared; its cache holds resolved contexts)."""
    global _default
    if _default is None:
        _default = ContextLoader()
    return _default


def _reason(exc: BaseException) -> str:
    parts = []
    while exc is not None and len(parts) < 4:
        text = getattr(exc, "message", None) or str(exc)
        code = getattr(exc, "code", None)
        parts.append(f"{text} ({code})" if code else text)
        exc = exc.__cause__ or getattr(exc, "cause", None)
    return ": ".join(p for p in parts if p)


@cache
def _pyld() -> Any:
    from pyld import jsonld

    return jsonld


@cache
def _bounded_urdna2015() -> type:
    from pyld.canon import URDNA2015

    class BoundedURDNA2015(URDNA2015):
        """RDFC-1.0 that stops after ``MAX_NDEGREE_CALLS`` N-degree hash steps (poison-graph guard)."""

        def __init__(self) -> None:
            super().__init__()
            self._calls = 0

        def hash_n_degree_quads(self, id_, issuer):  # noqa: ANN001, ANN201 - PyLD's signature
            self._calls += 1
            if self._calls > MAX_NDEGREE_CALLS:
                raise JsonLdError("canonicalization refused: too much blank-node hashing (poison graph?)")
            return super().hash_n_degree_quads(id_, issuer)

    return BoundedURDNA2015


def _to_dataset(document: Any, loader: ContextLoader) -> dict:
    if not isinstance(document, dict):
        raise JsonLdError("a JSON-LD document must be a JSON object")
    try:
        dataset = _pyld().JsonLdProcessor().to_rdf(document, loader.options(produceGeneralizedRdf=False))
    except _pyld().JsonLdError as exc:
        raise JsonLdError(f"JSON-LD processing failed: {_reason(exc)}") from None
    except (RecursionError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise JsonLdError(f"JSON-LD processing failed: {type(exc).__name__}") from None
    quads = sum(len(triples) for triples in dataset.values())
    if quads > MAX_QUADS:
        raise JsonLdError(f"canonicalization refused: {quads} quads (limit {MAX_QUADS})")
    blanks = set()
    for graph, triples in dataset.items():
        if graph.startswith("_:"):
            blanks.add(graph)
        for t in triples:
            for part in (t["subject"], t["object"]):
                if part.get("type") == "blank node":
                    blanks.add(part["value"])
    if len(blanks) > MAX_BLANK_NODES:
        raise JsonLdError(f"canonicalization refused: {len(blanks)} blank nodes (limit {MAX_BLANK_NODES})")
    return dataset


def canonicalize_rdfc(document: Any, loader: ContextLoader | None = None) -> str:
    """The RDFC-1.0 canonical N-Quads of a JSON-LD document (UTF-8 text, sorted, ``_:c14nN`` blank nodes).
    Raises ``JsonLdError`` for unknown contexts, invalid JSON-LD or a dataset over the limits."""
    loader = loader or default_loader()
    dataset = _to_dataset(document, loader)
    try:
        return _bounded_urdna2015()().main(dataset, {"format": "application/n-quads"})
    except RecursionError:
        raise JsonLdError("canonicalization refused: nesting too deep") from None


def canonicalize_rdfc_small(document: Any, loader: ContextLoader | None = None) -> str:
    """``canonicalize_rdfc`` remembered by the loader for its last 64 documents (by their sorted-key JSON): for
    small documents that recur, such as a Data Integrity proof configuration (it changes with its ``created``
    second). The result is the same function of the document and the loader's fixed contexts."""
    loader = loader or default_loader()
    if not _plain_json(document, 0):  # e.g. a tuple, which JSON would show as a list but PyLD reads otherwise
        return canonicalize_rdfc(document, loader)
    key = json.dumps(document, sort_keys=True, ensure_ascii=False)
    if len(key) > 4096:
        return canonicalize_rdfc(document, loader)
    with loader._canonical_lock:
        found = loader._canonical.get(key)
    if found is None:
        found = canonicalize_rdfc(document, loader)
        with loader._canonical_lock:
            loader._canonical[key] = found
    return found


def _plain_json(value: Any, depth: int) -> bool:
    if depth > 8:
        return False
    if value is None or type(value) in (str, int, bool):
        return True
    if type(value) is list:
        return all(_plain_json(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain_json(v, depth + 1) for k, v in value.items())
    return False


def _absolute(iri: str) -> bool:
    if iri.startswith("_:"):
        return True
    scheme, colon, _rest = iri.partition(":")
    return bool(colon) and bool(scheme) and scheme[0].isalpha() and all(
        c.isalnum() or c in "+-." for c in scheme)


def _scan(node: Any, path: str, problems: list[str]) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _scan(item, f"{path}[{i}]", problems)
        return
    if not isinstance(node, dict):
        return
    if "@value" in node:
        return
    for key, value in node.items():
        if key == "@id" and isinstance(value, str) and not _absolute(value):
            problems.append(f"relative @id {value!r} at {path or '/'}")
        elif key == "@type":
            for t in value if isinstance(value, list) else [value]:
                if isinstance(t, str) and not _absolute(t):
                    problems.append(f"undefined type {t!r} at {path or '/'}")
        elif not key.startswith("@") and not _absolute(key):
            problems.append(f"property {key!r} is not an absolute IRI at {path or '/'}")
        if key != "@type":
            _scan(value, f"{path}/{key}", problems)


def expand_safe(document: Any, loader: ContextLoader | None = None) -> list:
    """Expand ``document`` and refuse it if anything would be lost or left relative (jsonld.js safe mode):
    undefined terms (dropped properties), undefined ``@type`` values, relative ``@id`` references. Raises
    ``JsonLdError`` listing every problem; returns the expanded document otherwise."""
    loader = loader or default_loader()
    if not isinstance(document, dict):
        raise JsonLdError("a JSON-LD document must be a JSON object")
    dropped: list[str] = []
    try:
        expanded = _pyld().JsonLdProcessor(on_property_dropped=dropped.append).expand(document, loader.options())
    except _pyld().JsonLdError as exc:
        raise JsonLdError(f"JSON-LD expansion failed: {_reason(exc)}") from None
    except (RecursionError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise JsonLdError(f"JSON-LD expansion failed: {type(exc).__name__}") from None
    problems = [f"undefined term {term!r} (dropped)" for term in _unique(dropped)]
    _scan(expanded, "", problems)
    if problems:
        raise JsonLdError("not safe-mode JSON-LD: " + "; ".join(problems[:20]), problems=problems)
    return expanded


def _unique(items: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
