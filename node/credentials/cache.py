"""A bounded, per-process cache of signed credentials, keyed by everything the credential is made of.

A deposited record's credential is a signed statement: re-signing it on every read (an ``eddsa-rdfc-2022`` proof
costs milliseconds of JSON-LD processing) buys nothing while the record is unchanged. The key is not a version
number but the **content**: every column the credential is built from (the record's fields, its status index,
the learner's pseudonym, the institution's name, the deposit event's sequence, hash, salt and opening), the
issuer's constants (base URL, DID, name, the record level's reference level), the signing key (its id and its
public key bytes) and the proof suites asked for. So:

* a corrected record (any field a credential shows), a re-keyed node (rotation, `reload_identity`) or a renamed
  institution makes a different key: the next read builds and signs afresh; nothing has to be told to
  invalidate, and two workers or two nodes in one process can never serve each other's entries;
* a revoked record is never cached or served from the cache (``node.credentials.service`` only asks for
  ``deposited`` records; a revoked one is signed on each read, as before);
* it is bounded: at most ``MAX_ENTRIES`` credentials (least recently used dropped first), each kept as its
  serialised bytes (~4 KB with both proofs), so ~8 MB a process at most; entries are immutable bytes, so no
  caller can alter what another is served.

docs/performance.md, "Credentials and transcript".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["MAX_ENTRIES", "SignedCache", "embedded_datasets", "signed_credentials"]

MAX_ENTRIES = 2048


class SignedCache:
    """A thread-safe LRU map of content keys to serialised signed documents (bytes), or to other immutable values
    derived from the key alone (`value_type`)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, value_type: type = bytes, *,
                 max_weight: int | None = None, weigh: Callable[[Any], int] | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self.value_type = value_type
        # optionally bounded by the sum of the entries' weights too (e.g. their bytes): least recently used out
        self.max_weight, self._weigh, self.weight = max_weight, weigh, 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: bytes) -> None:
        if not isinstance(value, self.value_type):
            raise TypeError(f"this cache keeps {self.value_type.__name__} values")
        weight = self._weigh(value) if self._weigh is not None else 0
        if self.max_weight is not None and weight > self.max_weight:
            return  # heavier than the whole budget: not kept
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None and self._weigh is not None:
                self.weight -= self._weigh(old)
            self._items[key] = value
            self.weight += weight
            while len(self._items) > self.max_entries or (
                    self.max_weight is not None and self.weight > self.max_weight):
                _, dropped = self._items.popitem(last=False)
                if self._weigh is not None:
                    self.weight -= self._weigh(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = self.weight = 0

    def __len__(self) -> int:
        return len(self._items)


signed_credentials = SignedCache()

# A signed credential's RDF dataset as a transcript embeds it (crypto.rdfc.EmbeddedDataset), keyed by the
# credential's exact bytes: the dataset is a function of those bytes and the bundled contexts alone. It spares
# the JSON-LD to RDF conversion of every credential on every transcript (its eddsa-rdfc-2022 proof); ~20 KB each.
embedded_datasets = SignedCache(max_entries=1024, value_type=object)
