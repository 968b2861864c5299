"""Envelope encryption with KMS data keys and AES-256-GCM.

Every ciphertext is bound to its record: purpose and record id (the token or
payment id) are the GCM associated data, so a ciphertext copied to another
record does not open; the KMS encryption context names the purpose of the data
key. (A per-record KMS context would defeat any data-key cache: see
docs/adr/0002-card-vault-encryption.md.) Data
keys are cached per container with an age and a use limit (the AWS Encryption
SDK's caching model), so a busy function asks KMS once per few hundred records,
not once per record; decrypted data keys are cached the same way.
"""

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lambdas.encryption_context import CONTEXT_KEY

MAX_KEY_AGE_SECONDS = 300.0
MAX_KEY_USES = 1000


@dataclass(frozen=True)
class Sealed:
    wrapped_key: bytes  # the data key, encrypted by KMS
    nonce: bytes
    ciphertext: bytes

    def to_item(self) -> dict[str, Any]:
        return {"key": self.wrapped_key, "nonce": self.nonce, "ct": self.ciphertext}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "Sealed":
        return cls(bytes(item["key"]), bytes(item["nonce"]), bytes(item["ct"]))


@dataclass
class _CachedKey:
    plaintext: bytes
    wrapped: bytes
    born: float
    uses: int = 0

    def usable(self, now: float) -> bool:
        return now - self.born < MAX_KEY_AGE_SECONDS and self.uses < MAX_KEY_USES


class EnvelopeCipher:
    """Seals and opens byte strings for one purpose (e.g. card vault, payment metadata)."""

    def __init__(self, kms: Any, key_id: str, purpose: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.kms = kms
        self.key_id = key_id
        self.context = {CONTEXT_KEY: purpose}
        self.clock = clock
        self._lock = threading.Lock()
        self._current: _CachedKey | None = None
        self._opened: dict[bytes, _CachedKey] = {}

    def seal(self, plaintext: bytes, record_id: str) -> Sealed:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 (loaded when first used)

        key = self._data_key()
        nonce = os.urandom(12)
        return Sealed(key.wrapped, nonce, AESGCM(key.plaintext).encrypt(nonce, plaintext, self._aad(record_id)))

    def open(self, sealed: Sealed, record_id: str) -> bytes:
        """Decrypt; fails (InvalidTag) if the ciphertext was moved to another record."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 (loaded when first used)

        key = self._unwrap(sealed.wrapped_key)
        return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, self._aad(record_id))

    def _aad(self, record_id: str) -> bytes:
        return f"{self.context[CONTEXT_KEY]}:{record_id}".encode()

    def _data_key(self) -> _CachedKey:
        now = self.clock()
        with self._lock:
            if self._current is None or not self._current.usable(now):
                generated = self.kms.generate_data_key(
                    KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=self.context
                )
                self._current = _CachedKey(generated["Plaintext"], generated["CiphertextBlob"], now)
                self._opened[self._current.wrapped] = self._current
            self._current.uses += 1
            return self._current

    def _unwrap(self, wrapped: bytes) -> bytes:
        now = self.clock()
        with self._lock:
            cached = self._opened.get(wrapped)
            if cached and now - cached.born < MAX_KEY_AGE_SECONDS:
                return cached.plaintext
            self._opened = {k: v for k, v in self._opened.items() if now - v.born < MAX_KEY_AGE_SECONDS}
        decrypted = self.kms.decrypt(CiphertextBlob=wrapped, KeyId=self.key_id, EncryptionContext=self.context)
        plaintext: bytes = decrypted["Plaintext"]
        with self._lock:
            self._opened[wrapped] = _CachedKey(plaintext, wrapped, now)
        return plaintext
