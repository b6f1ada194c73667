"""RDFC-1.0 of a JSON-LD document that embeds other documents as graphs, reusing each embedded document's dataset.

A Verifiable Presentation embeds its credentials under ``verifiableCredential``, which the VC 2.0 context declares
``"@container": "@graph"`` with ``"@context": null``: each embedded credential is expanded exactly as it is on its
own (its own ``@context`` applies, nothing of the presentation's), and its triples land in a named graph of its
own, named by a fresh blank node that the presentation links to::

    dataset(P) = dataset(P with each embedded document replaced by {})      -- the "shell": P's own triples and
                                                                                the links  <P> vc:… _:g_i
               ∪ for each i: dataset(C_i), its default graph renamed _:g_i, its blank nodes renamed apart

Turning JSON-LD into RDF is the expensive part of RDFC (PyLD: ~90 % of a 20-credential transcript); an
``EmbeddedDataset`` does it once per embedded document and keeps, besides the quads, what RDFC-1.0's first pass
needs: the first-degree hash of each of its blank nodes (they only ever appear in quads of this document, so the
hash does not depend on where it is embedded) and the sorted first-degree lines of the graph node (all but the one
link quad). ``canonicalize_embedding`` then converts only the shell, hashes only what is new, and — when every
blank node's first-degree hash is unique, RDFC-1.0 §4.4.3 step 5, the usual case — issues the canonical labels
in hash order and serialises. The result is byte-identical to ``crypto.jsonld.canonicalize_rdfc`` of the whole
document (tests compare them); anything this shortcut does not cover (two blank nodes with one first-degree
hash, a quad naming one blank node twice, an IRI-named graph inside an embedded document, an embedding property
that is not a graph container) is canonicalised whole by ``canonicalize_rdfc`` instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from crypto.jsonld import ContextLoader, _to_dataset, canonicalize_rdfc, default_loader

__all__ = ["EmbeddedDataset", "canonicalize_embedding"]

_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
_RDF_LANGSTRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"

# A quad: (subject, predicate, object, graph); a blank node is an int (its number within its dataset), any other
# term its N-Quads text; graph None is the default graph (of an embedded document: the graph it is embedded as).
Quad = tuple[Any, str, Any, Any]


def _escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
            .replace('"', '\\"'))


def _term(term: dict, blanks: dict[str, int]) -> Any:
    kind = term["type"]
    if kind == "IRI":
        return "<" + term["value"] + ">"
    if kind == "blank node":
        return blanks.setdefault(term["value"], len(blanks))
    text = '"' + _escape(term["value"]) + '"'
    if term["datatype"] == _RDF_LANGSTRING:
        if term.get("language"):
            text += "@" + term["language"]
    elif term["datatype"] != _XSD_STRING:
        text += "^^<" + term["datatype"] + ">"
    return text


def _quads(dataset: dict) -> tuple[list[Quad], int, set[int]]:
    """PyLD's dataset as quads with numbered blank nodes; also the blank nodes that name a graph without triples."""
    blanks: dict[str, int] = {}
    quads: list[Quad] = []
    empty: set[int] = set()
    for name, triples in dataset.items():
        if name == "@default":
            graph = None
        elif name.startswith("_:"):
            graph = blanks.setdefault(name, len(blanks))
            if not triples:
                empty.add(graph)
        else:
            graph = "<" + name + ">"
        for t in triples:
            quads.append((_term(t["subject"], blanks), _term(t["predicate"], blanks), _term(t["object"], blanks),
                          graph))
    return quads, len(blanks), empty


def _line(quad: Quad, label: Any) -> str:
    s, p, o, g = quad
    text = (label(s) if type(s) is int else s) + " " + p + " " + (label(o) if type(o) is int else o)
    if g is not None:
        text += " " + (label(g) if type(g) is int else g)
    return text + " .\n"


def _hash(lines: list[str]) -> str:
    lines.sort()
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _mentions(quads: list[Quad], count: int) -> list[list[Quad]] | None:
    """The quads naming each blank node; None if a quad names one blank node twice (PyLD counts such a quad
    twice; the shortcut leaves that case to it)."""
    mentions: list[list[Quad]] = [[] for _ in range(count)]
    for quad in quads:
        s, _p, o, g = quad
        named = [x for x in (s, o, g) if type(x) is int]
        if len(named) != len(set(named)):
            return None
        for b in named:
            mentions[b].append(quad)
    return mentions


class EmbeddedDataset:
    """One embeddable document's RDF dataset, ready to be composed into a document that embeds it as a graph.
    Immutable once built; build it once per document (it is worth caching: ``of`` runs the JSON-LD to RDF
    conversion). ``usable`` is False when the shortcut cannot apply (see the module docstring)."""

    __slots__ = ("blank_count", "graph_lines", "inner_hashes", "quads", "usable")

    def __init__(self, quads: list[Quad], blank_count: int, inner_hashes: tuple[str, ...],
                 graph_lines: tuple[str, ...], usable: bool) -> None:
        self.quads = tuple(quads)
        self.blank_count = blank_count
        self.inner_hashes = inner_hashes
        self.graph_lines = graph_lines
        self.usable = usable

    @classmethod
    def of(cls, document: dict, loader: ContextLoader | None = None) -> EmbeddedDataset:
        """Raises ``JsonLdError`` as ``canonicalize_rdfc`` would for the document alone."""
        quads, count, _empty = _quads(_to_dataset(document, loader or default_loader()))
        mentions = _mentions(quads, count)
        usable = mentions is not None and not any(isinstance(q[3], str) for q in quads)
        if not usable:
            return cls(quads, count, (), (), False)

        inner = []
        for b in range(count):
            def label(x: int, b: int = b) -> str:
                return "_:a" if x == b else "_:z"
            # embedded, the default graph is a blank node other than b: "_:z"
            inner.append(_hash([_line(q if q[3] is not None else (*q[:3], -1), label) for q in mentions[b]]))

        def graph_label(x: int) -> str:
            return "_:a" if x == -1 else "_:z"
        graph_lines = tuple(_line((*q[:3], -1), graph_label) for q in quads if q[3] is None)
        return cls(quads, count, tuple(inner), graph_lines, True)


def canonicalize_embedding(document: dict, prop: str, embedded: Sequence[EmbeddedDataset],
                           loader: ContextLoader | None = None) -> str:
    """The RDFC-1.0 canonical N-Quads of ``document``, whose ``prop`` is the list of embedded documents that
    ``embedded`` holds the datasets of (same order, same documents: the caller's duty — e.g. both looked up by
    the same content key). Byte-identical to ``canonicalize_rdfc(document, loader)``, which it falls back to."""
    loader = loader or default_loader()
    items = document.get(prop)
    if not isinstance(items, list) or len(items) != len(embedded) or not all(e.usable for e in embedded):
        return canonicalize_rdfc(document, loader)
    shell = dict(document)
    shell[prop] = [{} for _ in items]
    quads, count, links = _quads(_to_dataset(shell, loader))
    mentions = _mentions(quads, count)
    if mentions is None or len(links) != len(embedded) or any(len(mentions[g]) != 1 for g in links):
        return canonicalize_rdfc(document, loader)

    # global blank node numbers: the shell's, then each embedded document's after an offset
    hashes: list[str] = []
    for b in range(count):
        def label(x: int, b: int = b) -> str:
            return "_:a" if x == b else "_:z"
        if b in links:
            hashes.append("")  # set below, with its embedded document
        else:
            hashes.append(_hash([_line(q, label) for q in mentions[b]]))
    offsets = []
    graph_of = sorted(links)
    offset = count
    for g, part in zip(graph_of, embedded, strict=True):
        (link,) = mentions[g]
        lines = list(part.graph_lines)
        lines.append(_line(link, lambda x, g=g: "_:a" if x == g else "_:z"))
        hashes[g] = _hash(lines)
        hashes.extend(part.inner_hashes)
        offsets.append(offset)
        offset += part.blank_count
    if len(set(hashes)) != len(hashes):
        return canonicalize_rdfc(document, loader)  # N-degree hashing needed: PyLD's full algorithm

    canonical = [""] * len(hashes)
    for n, b in enumerate(sorted(range(len(hashes)), key=hashes.__getitem__)):
        canonical[b] = f"_:c14n{n}"
    out = [_line(q, canonical.__getitem__) for q in quads]
    for g, part, base in zip(graph_of, embedded, offsets, strict=True):
        name = canonical[g]
        names = canonical[base:base + part.blank_count]
        for s, p, o, graph in part.quads:
            text = (names[s] if type(s) is int else s) + " " + p + " " + (names[o] if type(o) is int else o) + " "
            out.append(text + (name if graph is None else names[graph]) + " .\n")
    out.sort()
    return "".join(out)
