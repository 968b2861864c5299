"""The ledger's KMS signing key (``ECC_NIST_P256``): signs checkpoints, serves its public key
(``lambdas.ports.Signer``)."""

from typing import Any

from lambdas.domain.checkpoints import ALGORITHM, MAX_SIGNED_BYTES, pem_of


class KmsSigner:
    """Signs raw messages with the key ``key_id`` (its ARN, as KMS names the signer); the public key is read once
    per container (it never changes for a key)."""

    def __init__(self, kms: Any, key_id: str) -> None:
        self.kms = kms
        self.key_id = key_id
        self._pem: str | None = None

    def sign(self, message: bytes) -> bytes:
        if len(message) > MAX_SIGNED_BYTES:
            raise ValueError(f"KMS signs at most {MAX_SIGNED_BYTES} bytes of a raw message, not {len(message)}")
        answer = self.kms.sign(KeyId=self.key_id, Message=message, MessageType="RAW", SigningAlgorithm=ALGORITHM)
        return bytes(answer["Signature"])

    def public_key_pem(self) -> str:
        if self._pem is None:
            self._pem = pem_of(bytes(self.kms.get_public_key(KeyId=self.key_id)["PublicKey"]))
        return self._pem
