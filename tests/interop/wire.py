"""What grpcio's API hides: whether a message arrived compressed.

interop-test-descriptions.md asks both ends to look at the per-message
"Compressed-Flag" (PROTOCOL-HTTP2.md, Length-Prefixed-Message): the server
fails a request whose flag does not match `expect_compressed` with
INVALID_ARGUMENT ("CompressedRequest"), and the client checks that responses
carry the flag exactly when `response_compressed`/`compressed` asked for it
("CompressedResponse"). gRPC C++ reads the flag through an internal
inspector; grpcio exposes neither the flag nor the `grpc-encoding` header.

What grpcio does expose is C-core's channel argument
`grpc.per_message_decompression`. Set to 0, C-core still parses the
length-prefixed frames but hands the application each message's bytes as
they were on the wire: a message sent with Compressed-Flag 1 arrives as the
compressed bytes, one sent with flag 0 as plain protobuf. The two are told
apart without ambiguity:

* gzip (RFC 1952) starts with 0x1f 0x8b. A protobuf message cannot start
  with 0x1f: that is a tag with wire type 7, which does not exist.
* deflate, which gRPC means as the zlib format (RFC 1950), starts with a
  2-byte header whose value is a multiple of 31 and whose low nibble is 8,
  and ends with an Adler-32 of the content; we only call it compressed if
  the whole zlib stream decodes and checks out.

Only gzip and deflate are recognised because they are all gRPC C-core
supports (`grpc-accept-encoding: identity,deflate,gzip`); a peer that sent
anything else would get UNIMPLEMENTED from C-core before reaching us.
"""

import zlib

# Channel/server option that makes C-core pass compressed messages through.
NO_DECOMPRESSION = ("grpc.per_message_decompression", 0)

# Bound on a decompressed message: matches gRPC's default max receive size
# (4 MiB), so a compression bomb costs us at most that much memory.
MAX_DECOMPRESSED = 4 * 1024 * 1024


class Received:
    """A decoded message and whether its Compressed-Flag was set."""

    __slots__ = ("message", "compressed")

    def __init__(self, message, compressed):
        self.message = message
        self.compressed = compressed


def _inflate(raw, wbits):
    d = zlib.decompressobj(wbits)
    out = d.decompress(raw, MAX_DECOMPRESSED)
    if d.unconsumed_tail:
        raise ValueError(f"decompressed message exceeds {MAX_DECOMPRESSED} bytes")
    out += d.flush()
    if not d.eof or d.unused_data:
        raise ValueError("compressed message is truncated or has trailing bytes")
    return out


def _looks_like_zlib(raw):
    return len(raw) >= 2 and raw[0] & 0x0F == 8 and ((raw[0] << 8) | raw[1]) % 31 == 0


def decode(raw, message_class):
    """Parses wire bytes received with decompression off; see module doc."""
    if raw[:2] == b"\x1f\x8b":
        return Received(message_class.FromString(_inflate(raw, 16 + zlib.MAX_WBITS)), True)
    if _looks_like_zlib(raw):
        try:
            plain = _inflate(raw, zlib.MAX_WBITS)
        except (zlib.error, ValueError):
            pass  # not a zlib stream after all: a plain message
        else:
            return Received(message_class.FromString(plain), True)
    return Received(message_class.FromString(raw), False)


def decoder(message_class):
    """A grpcio deserializer that yields `Received` instead of the message."""
    return lambda raw: decode(raw, message_class)
