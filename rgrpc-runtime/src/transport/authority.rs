//! Unix-socket clients that name the socket in `:authority`, made acceptable to h2.
//!
//! grpc-go before 1.57 (and so grpcurl 1.8), grpc-java and older grpcio send the socket
//! path (`/tmp/app.sock`) as `:authority` when they dial a Unix socket. h2 parses
//! `:authority` as a URI authority, in which `/` is not allowed, and resets every such
//! stream with PROTOCOL_ERROR before we see it (hyperium/h2 issue 487); grpc-go servers
//! accept it. So on Unix-socket connections the server rewrites that value before h2
//! reads it: each `/` (and space) becomes `-`, byte for byte in a plain literal and code
//! for code in a Huffman-coded one (RFC 7541 Appendix B gives both 6-bit codes), so the
//! header block keeps its length and the HPACK dynamic table its sizes (section 4.1),
//! and later references to the entry resolve to the rewritten value on both sides.
//! The handler sees `-tmp-app.sock` as the authority.
//!
//! Only the first fragment of a HEADERS frame is looked at, and only a literal whose
//! name is the static `:authority` (index 1, how every client sends it); a HEADERS
//! frame larger than [`MAX_HELD`] passes untouched. To see a frame whole, its bytes are
//! held until it is complete: at most [`MAX_HELD`] bytes per connection.

/// The largest HEADERS frame held for the rewrite: a 9-byte header and 16 KiB, the
/// HTTP/2 default frame size; larger frames pass through as they arrive.
pub(crate) const MAX_HELD: usize = 9 + 16 * 1024;

/// The client connection preface (RFC 9113 section 3.4), passed through first.
const PREFACE_LEN: usize = 24;

/// RFC 7541 Appendix B: (code, length in bits) per symbol, 256 = EOS.
const HUFFMAN: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

/// Where the reader is in the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// Within the preface: this many bytes of it still to pass.
    Preface(usize),
    /// At a frame boundary.
    Boundary,
    /// Inside a frame that is passed through: this many payload bytes still to pass.
    Passing(usize),
}

/// The read-side state of one Unix-socket connection's rewrite.
///
/// ```text
///   Preface(n) ──24 bytes passed──▶ Boundary ──HEADERS, whole within MAX_HELD──▶ rewritten, passed, Boundary
///                                     │  ▲
///                                     │  └──────── payload passed ──────────┐
///                                     └──── any other frame ──▶ Passing(payload left)
/// ```
#[derive(Debug)]
pub(crate) struct AuthorityFix {
    at: At,
    /// Bytes read and not yet handed on; `ready` of them are.
    held: Vec<u8>,
    ready: usize,
}

impl AuthorityFix {
    /// The state for a server connection (its input starts with the preface).
    pub(crate) fn new() -> AuthorityFix {
        AuthorityFix {
            at: At::Preface(PREFACE_LEN),
            held: Vec::new(),
            ready: 0,
        }
    }

    /// Bytes ready to hand on.
    pub(crate) fn ready(&self) -> &[u8] {
        &self.held[..self.ready]
    }

    /// `n` ready bytes were handed on.
    pub(crate) fn consume(&mut self, n: usize) {
        self.held.drain(..n);
        self.ready -= n;
        if self.held.is_empty() {
            // Idle connections keep no buffer.
            self.held = Vec::new();
        }
    }

    /// Room to read into: how many bytes the next read may add.
    pub(crate) fn room(&self) -> usize {
        MAX_HELD.saturating_sub(self.held.len()).max(1)
    }

    /// Appends bytes read from the socket and makes what can be handed on ready.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.held.extend_from_slice(bytes);
        self.advance();
    }

    /// At end of input everything held goes on as is (h2 reports a truncated frame).
    pub(crate) fn finish(&mut self) {
        self.ready = self.held.len();
    }

    fn advance(&mut self) {
        loop {
            let pending = self.held.len() - self.ready;
            match self.at {
                At::Preface(left) | At::Passing(left) if left > 0 => {
                    let n = left.min(pending);
                    if n == 0 {
                        return;
                    }
                    self.ready += n;
                    self.at = match self.at {
                        At::Preface(_) => At::Preface(left - n),
                        _ => At::Passing(left - n),
                    };
                }
                At::Preface(_) | At::Passing(_) => self.at = At::Boundary,
                At::Boundary => {
                    if pending < 9 {
                        return;
                    }
                    let header = &self.held[self.ready..self.ready + 9];
                    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
                    let (kind, flags) = (header[3], header[4]);
                    if kind != 0x1 || 9 + len > MAX_HELD {
                        self.ready += 9;
                        self.at = At::Passing(len);
                        continue;
                    }
                    if pending < 9 + len {
                        return;
                    }
                    let start = self.ready + 9;
                    rewrite_headers(&mut self.held[start..start + len], flags);
                    self.ready += 9 + len;
                }
            }
        }
    }
}

/// Rewrites the `:authority` literal in a HEADERS frame's payload (RFC 9113 section
/// 6.2: optional pad length and priority fields, then the header block fragment).
fn rewrite_headers(payload: &mut [u8], flags: u8) {
    let mut start = 0;
    let mut end = payload.len();
    if flags & 0x8 != 0 {
        // PADDED
        let Some(&pad) = payload.first() else { return };
        start = 1;
        end = end.saturating_sub(pad as usize);
    }
    if flags & 0x20 != 0 {
        // PRIORITY
        start += 5;
    }
    if start < end {
        rewrite_block(&mut payload[start..end]);
    }
}

/// Walks an HPACK header block (RFC 7541 section 6) and rewrites the first literal
/// `:authority` value; stops at anything it cannot parse (h2 will judge it).
pub(crate) fn rewrite_block(block: &mut [u8]) -> Option<()> {
    let mut at = 0;
    while at < block.len() {
        let first = block[at];
        if first & 0x80 != 0 {
            // Indexed field (6.1).
            integer(block, &mut at, 7)?;
        } else if first & 0xe0 == 0x20 {
            // Dynamic table size update (6.3).
            integer(block, &mut at, 5)?;
        } else {
            // Literal (6.2.1 with indexing: 6-bit prefix; 6.2.2/6.2.3: 4-bit).
            let prefix = if first & 0x40 != 0 { 6 } else { 4 };
            let name = integer(block, &mut at, prefix)?;
            if name == 0 {
                string(block, &mut at)?;
            }
            let value = string(block, &mut at)?;
            if name == 1 {
                rewrite_value(&mut block[value.0..value.1], value.2);
                return Some(());
            }
        }
    }
    Some(())
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 section 5.1), bounded to 2^28.
fn integer(block: &[u8], at: &mut usize, n: u32) -> Option<usize> {
    let max = (1usize << n) - 1;
    let mut value = (*block.get(*at)? as usize) & max;
    *at += 1;
    if value < max {
        return Some(value);
    }
    for shift in (0..28).step_by(7) {
        let byte = *block.get(*at)?;
        *at += 1;
        value += ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A string literal (RFC 7541 section 5.2): its byte range and whether it is Huffman
/// coded.
fn string(block: &[u8], at: &mut usize) -> Option<(usize, usize, bool)> {
    let huffman = *block.get(*at)? & 0x80 != 0;
    let len = integer(block, at, 7)?;
    let start = *at;
    let end = start.checked_add(len).filter(|&e| e <= block.len())?;
    *at = end;
    Some((start, end, huffman))
}

/// The replacement of a byte h2's authority parser refuses, of the same Huffman code
/// length (6 bits for all three).
fn replacement(byte: u8) -> Option<u8> {
    match byte {
        b'/' | b' ' => Some(b'-'),
        _ => None,
    }
}

fn rewrite_value(value: &mut [u8], huffman: bool) {
    if !huffman {
        for byte in value.iter_mut() {
            if let Some(r) = replacement(*byte) {
                *byte = r;
            }
        }
        return;
    }
    // Decode symbol by symbol, tracking each symbol's bit offset; replace codes in
    // place (same length, so nothing after them moves).
    let total_bits = value.len() * 8;
    let mut bit = 0;
    while bit < total_bits {
        let Some((symbol, len)) = decode_symbol(value, bit) else {
            return; // padding (a prefix of EOS) or invalid: leave the rest
        };
        if let Some(r) = replacement(symbol) {
            let (code, new_len) = HUFFMAN[r as usize];
            debug_assert_eq!(new_len, len);
            write_bits(value, bit, code, len);
        }
        bit += len as usize;
    }
}

/// Reads `len` bits at bit offset `bit` (MSB first); missing bits read as 1 (padding).
fn read_bits(data: &[u8], bit: usize, len: u8) -> u32 {
    let mut v = 0u32;
    for i in 0..len as usize {
        let b = bit + i;
        let set = data.get(b / 8).map_or(1, |byte| (byte >> (7 - b % 8)) & 1);
        v = (v << 1) | set as u32;
    }
    v
}

fn write_bits(data: &mut [u8], bit: usize, code: u32, len: u8) {
    for i in 0..len as usize {
        let b = bit + i;
        let set = (code >> (len as usize - 1 - i)) & 1;
        let mask = 1u8 << (7 - b % 8);
        if set == 1 {
            data[b / 8] |= mask;
        } else {
            data[b / 8] &= !mask;
        }
    }
}

/// The symbol whose code starts at `bit`, and its length; `None` at padding or EOS.
fn decode_symbol(data: &[u8], bit: usize) -> Option<(u8, u8)> {
    let left = data.len() * 8 - bit;
    for len in 5..=30u8 {
        if len as usize > left {
            return None;
        }
        let v = read_bits(data, bit, len);
        if let Some(symbol) = HUFFMAN.iter().position(|&(c, l)| l == len && c == v) {
            return (symbol < 256).then_some((symbol as u8, len));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn huffman_encode(s: &[u8]) -> Vec<u8> {
        let bits: usize = s.iter().map(|&b| HUFFMAN[b as usize].1 as usize).sum();
        let mut out = vec![0u8; bits.div_ceil(8)];
        let mut bit = 0;
        for &b in s {
            let (code, len) = HUFFMAN[b as usize];
            write_bits(&mut out, bit, code, len);
            bit += len as usize;
        }
        // Pad with the most significant bits of EOS (all ones).
        while bit % 8 != 0 {
            write_bits(&mut out, bit, 1, 1);
            bit += 1;
        }
        out
    }

    fn huffman_decode(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut bit = 0;
        while let Some((symbol, len)) = decode_symbol(data, bit) {
            out.push(symbol);
            bit += len as usize;
        }
        out
    }

    /// `:method POST` (indexed 3), `:authority` literal with indexing, `:path` literal.
    fn block(authority: &[u8], huffman: bool) -> Vec<u8> {
        let value = if huffman {
            huffman_encode(authority)
        } else {
            authority.to_vec()
        };
        let mut b = vec![
            0x83,
            0x41,
            (if huffman { 0x80 } else { 0 }) | value.len() as u8,
        ];
        b.extend_from_slice(&value);
        b.extend_from_slice(&[0x04, 0x03]);
        b.extend_from_slice(b"/a/");
        b
    }

    #[test]
    fn a_plain_socket_path_authority_becomes_an_authority() {
        let mut b = block(b"/tmp/app.sock", false);
        let len = b.len();
        rewrite_block(&mut b).unwrap();
        assert_eq!(b.len(), len);
        assert_eq!(&b[3..16], b"-tmp-app.sock");
        assert_eq!(&b[18..], b"/a/", ":path is not touched");
        assert!(http::uri::Authority::try_from(&b[3..16]).is_ok());
    }

    #[test]
    fn a_huffman_coded_one_is_rewritten_code_for_code() {
        let mut b = block(b"/tmp/a b/x.sock", true);
        let before = b.clone();
        rewrite_block(&mut b).unwrap();
        assert_eq!(b.len(), before.len());
        let len = (b[2] & 0x7f) as usize;
        assert_eq!(huffman_decode(&b[3..3 + len]), b"-tmp-a-b-x.sock");
        assert_eq!(&b[3 + len..], &before[3 + len..]);
    }

    #[test]
    fn host_port_authorities_and_garbage_are_left_alone() {
        let mut b = block(b"localhost:50051", true);
        let before = b.clone();
        rewrite_block(&mut b).unwrap();
        assert_eq!(b, before);
        let mut garbage = vec![0x41, 0xff, 0xff, 0xff];
        let _ = rewrite_block(&mut garbage); // truncated integer: no panic
        let mut empty: Vec<u8> = Vec::new();
        assert!(rewrite_block(&mut empty).is_some());
    }

    #[test]
    fn frames_are_held_until_whole_and_pass_in_order() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
        let payload = block(b"/s.sock", false);
        let mut headers = vec![0, 0, payload.len() as u8, 1, 0x4, 0, 0, 0, 1];
        headers.extend_from_slice(&payload);
        let mut input = preface.to_vec();
        input.extend_from_slice(&settings);
        input.extend_from_slice(&headers);
        // Byte by byte: the output equals the input with the authority rewritten.
        let mut fix = AuthorityFix::new();
        let mut out = Vec::new();
        for b in &input {
            fix.push(std::slice::from_ref(b));
            let n = fix.ready().len();
            out.extend_from_slice(fix.ready());
            fix.consume(n);
            assert!(fix.held.len() <= MAX_HELD);
        }
        let mut expected = input.clone();
        let at = preface.len() + settings.len() + 9 + 3;
        expected[at..at + 7].copy_from_slice(b"-s.sock");
        assert_eq!(out, expected);
    }

    #[test]
    fn large_frames_pass_through_without_being_held_whole() {
        let mut fix = AuthorityFix::new();
        fix.push(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let n = fix.ready().len();
        fix.consume(n);
        // A 1 MiB DATA frame: its header, then payload as it comes.
        let len = 1 << 20;
        fix.push(&[
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            0,
            0,
            0,
            0,
            0,
            1,
        ]);
        fix.push(&[7; 100]);
        assert_eq!(fix.ready().len(), 109);
    }
}
