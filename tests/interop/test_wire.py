"""Unit tests for wire.decode: python -m unittest discover -s tests/interop -p 'test_*.py'"""

import gzip
import unittest
import zlib

import wire
from protos import empty_pb2, messages_pb2


def _request(size):
    return messages_pb2.SimpleRequest(response_size=7, payload=messages_pb2.Payload(body=b"\x00" * size))


class DecodeTest(unittest.TestCase):
    def test_plain(self):
        got = wire.decode(_request(100).SerializeToString(), messages_pb2.SimpleRequest)
        self.assertFalse(got.compressed)
        self.assertEqual(got.message, _request(100))

    def test_gzip(self):
        got = wire.decode(gzip.compress(_request(100).SerializeToString()), messages_pb2.SimpleRequest)
        self.assertTrue(got.compressed)
        self.assertEqual(got.message, _request(100))

    def test_deflate_is_zlib_format(self):
        got = wire.decode(zlib.compress(_request(100).SerializeToString()), messages_pb2.SimpleRequest)
        self.assertTrue(got.compressed)
        self.assertEqual(got.message, _request(100))

    def test_empty_message(self):
        self.assertFalse(wire.decode(b"", empty_pb2.Empty).compressed)
        self.assertTrue(wire.decode(gzip.compress(b""), empty_pb2.Empty).compressed)

    def test_plain_message_with_zlib_like_header_stays_plain(self):
        # 0x78 0x9c would also be a valid zlib header; here it is field 15,
        # varint 156 (unknown field kept by protobuf), not a zlib stream.
        raw = b"\x78\x9c\x01"
        got = wire.decode(raw, empty_pb2.Empty)
        self.assertFalse(got.compressed)

    def test_bomb_is_refused(self):
        bomb = gzip.compress(b"\x00" * (wire.MAX_DECOMPRESSED + 1))
        with self.assertRaises(ValueError):
            wire.decode(bomb, messages_pb2.SimpleRequest)

    def test_truncated_gzip_is_an_error(self):
        data = gzip.compress(_request(100).SerializeToString())
        with self.assertRaises(Exception):
            wire.decode(data[:-6], messages_pb2.SimpleRequest)


if __name__ == "__main__":
    unittest.main()
