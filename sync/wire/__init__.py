"""What the central server shares with the kiosk: the wire models, the canonical record encoding
with its hash and chain check, request and lease signing, sealing to the server's key, the server
key fingerprints an enrollment is pinned to, the no-echo rule for error messages, and the
token formats (Verhoeff, leased and provisional). The server imports only this subpackage of
``sync``; nothing here imports the kiosk's client."""

__all__ = [
    "canonical",
    "directory",
    "fingerprint",
    "protocol",
    "redact",
    "sealing",
    "signing",
    "tokens",
    "verhoeff",
]
