"""Card data as an OSDP reader reports it: HID H10301 26-bit decoding, everything else kept opaque.

OSDP carries raw Wiegand data left-justified, most significant bit first: the first bit on the wire
is bit 7 of ``data[0]`` and ``bits`` says how many are meaningful. H10301 (the "26-bit" format) is

    bit 0       even parity over bits 1-12
    bits 1-8    facility code (0-255)
    bits 9-24   card number (0-65535)
    bit 25      odd parity over bits 13-24

Frames of any other length, or 26-bit frames whose parity fails, are reported as opaque: their
bits are never interpreted (a 26-bit misread is not a credential). Card numbers are the credential
itself for proximity cards, so :meth:`Credential.identity` feeds a keyed hash and never a log.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

H10301_BITS = 26

# libosdp's card formats (osdp.CardFormat): kept here so decoding needs no libosdp import.
FORMAT_RAW_UNSPECIFIED = 0
FORMAT_RAW_WIEGAND = 1
FORMAT_ASCII = 2


@dataclass(frozen=True)
class Credential:
    """One credential presentation, decoded as far as it safely can be."""

    format: str  # "H10301", "wiegand" (opaque bits), "ascii" (opaque text) or "raw"
    bits: int | None = None
    facility: int | None = None
    card: int | None = None
    parity_ok: bool | None = None
    payload: bytes = field(default=b"", repr=False)

    @property
    def decoded(self) -> bool:
        return self.facility is not None and self.card is not None

    def identity(self) -> bytes:
        """What the opaque holder id is computed over: stable for one card, never shown."""
        if self.decoded:
            return f"{self.format}:{self.facility}:{self.card}".encode()
        return f"{self.format}:{self.bits}:".encode() + self.payload

    def describe(self, *, numbers: bool = True) -> str:
        """A short description for an event's detail; without ``numbers`` no card data appears."""
        if self.decoded:
            if numbers:
                return f"{self.format} facility {self.facility} card {self.card}"
            return f"{self.format} (numbers withheld)"
        if self.format == "ascii":
            return f"ascii credential, {len(self.payload)} characters (opaque)"
        if self.bits == H10301_BITS and self.parity_ok is False:
            return "26-bit Wiegand with bad parity (misread? opaque)"
        return f"{self.bits}-bit {self.format} credential (opaque)"


def _parity_even(value: int) -> bool:
    return bin(value).count("1") % 2 == 0


def bits_to_int(data: bytes, bits: int) -> int:
    """The first ``bits`` bits of ``data`` (MSB first) as an integer."""
    if bits <= 0:
        raise ValueError("a Wiegand frame has at least one bit")
    needed = (bits + 7) // 8
    if len(data) < needed:
        raise ValueError(f"{bits} bits need {needed} bytes, got {len(data)}")
    return int.from_bytes(data[:needed], "big") >> (needed * 8 - bits)


def int_to_bits(value: int, bits: int) -> bytes:
    """``value`` as ``bits`` bits, left-justified in whole bytes (the OSDP layout)."""
    needed = (bits + 7) // 8
    return (value << (needed * 8 - bits)).to_bytes(needed, "big")


def decode_h10301(value: int) -> tuple[int, int] | None:
    """``(facility, card)`` from a 26-bit frame, or None when either parity bit is wrong."""
    if value >> H10301_BITS:
        raise ValueError("more than 26 bits")
    first_half = (value >> 13) & 0x1FFF  # bits 0-12: the even parity bit and what it covers
    second_half = value & 0x1FFF  # bits 13-25: what the odd parity bit covers, and that bit
    if not _parity_even(first_half) or _parity_even(second_half):
        return None
    return (value >> 17) & 0xFF, (value >> 1) & 0xFFFF


def encode_h10301(facility: int, card: int) -> bytes:
    """A 26-bit H10301 frame with correct parity, OSDP layout (4 bytes, 6 padding bits)."""
    if not 0 <= facility <= 0xFF or not 0 <= card <= 0xFFFF:
        raise ValueError("H10301 holds an 8-bit facility code and a 16-bit card number")
    payload = (facility << 16) | card  # bits 1-24
    even = bin(payload >> 12).count("1") % 2  # makes bits 0-12 even
    odd = 1 - bin(payload & 0xFFF).count("1") % 2  # makes bits 13-25 odd
    return int_to_bits((even << 25) | (payload << 1) | odd, H10301_BITS)


def decode(card_format: int, data: bytes, bits: int | None) -> Credential:
    """Decode one OSDP card read (``format``, ``data`` and, for raw formats, ``length`` in bits)."""
    if card_format == FORMAT_ASCII:
        return Credential("ascii", payload=bytes(data))
    kind = "wiegand" if card_format == FORMAT_RAW_WIEGAND else "raw"
    if bits is None or bits <= 0 or len(data) < (bits + 7) // 8:
        return Credential(kind, bits=bits, payload=bytes(data))
    value = bits_to_int(data, bits)
    payload = int_to_bits(value, bits)  # padding bits dropped: one card, one identity
    if bits == H10301_BITS:
        decoded = decode_h10301(value)
        if decoded is not None:
            facility, card = decoded
            return Credential("H10301", bits=bits, facility=facility, card=card, parity_ok=True, payload=payload)
        return Credential(kind, bits=bits, parity_ok=False, payload=payload)
    return Credential(kind, bits=bits, payload=payload)


def holder_id(credential: Credential, key: bytes) -> str:
    """An opaque, stable id for the card: keyed (HMAC-SHA256), so it cannot be reversed.

    A plain hash of a 24-bit facility/card pair is reversed by trying all 16 million of them; the
    site key makes that impossible without the key.
    """
    digest = hmac.new(key, credential.identity(), hashlib.sha256).hexdigest()
    return f"card-{digest[:16]}"
