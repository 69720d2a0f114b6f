//! The hash of the writer's stream table (`controlbuf`): one multiply per key.
//!
//! std's SipHash-1-3 took ~140 instructions per lookup, and a streamed message costs
//! the writer two (queued, then drained): ~280 of a ping-pong message's ~17k on the
//! server and ~20k on the client (callgrind, c=1 bidi ping-pong, 10 B). SipHash guards a
//! table whose keys an attacker chooses; these keys are the connection's own counter
//! (`StreamKey`, one per stream, counted up by the driver), so no peer can make them
//! collide. Multiplying by an odd constant is a bijection on u64, so distinct keys
//! never share a hash, and it spreads consecutive keys over both the low bits
//! hashbrown indexes with and the top seven it keeps as tags (Knuth's multiplicative
//! hashing).

use std::hash::{BuildHasherDefault, Hasher};

/// `BuildHasher` for tables keyed by `StreamKey`.
pub(crate) type KeyHash = BuildHasherDefault<KeyHasher>;

/// 2^64 divided by the golden ratio, made odd.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Hashes one `u64` key by a multiply; anything else a word at a time.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher {
    hash: u64,
}

impl Hasher for KeyHasher {
    fn write_u64(&mut self, key: u64) {
        self.hash = (self.hash ^ key).wrapping_mul(GOLDEN);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached by `u64` keys; kept correct for any other key type.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::hash::BuildHasher;

    #[test]
    fn consecutive_keys_get_distinct_hashes_spread_over_low_and_high_bits() {
        let hashes: Vec<u64> = (1..=1024u64)
            .map(|k| KeyHash::default().hash_one(k))
            .collect();
        let distinct: HashSet<u64> = hashes.iter().copied().collect();
        assert_eq!(distinct.len(), hashes.len());
        // hashbrown's bucket index (low bits) and tag (top 7 bits) both vary.
        let low: HashSet<u64> = hashes.iter().map(|h| h & 0x3ff).collect();
        let top: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(low.len() > 600, "low bits: {} of 1024", low.len());
        assert_eq!(top.len(), 128, "every tag value is used");
    }

    #[test]
    fn a_table_keyed_by_it_finds_what_was_put_and_forgets_what_was_removed() {
        let mut table: HashMap<u64, u64, KeyHash> = HashMap::default();
        for k in 1..=500 {
            table.insert(k, k * 10);
        }
        for k in (1..=500).step_by(2) {
            table.remove(&k);
        }
        for k in 1..=500 {
            let expected = (k % 2 == 0).then_some(k * 10);
            assert_eq!(table.get(&k).copied(), expected, "key {k}");
        }
        assert_eq!(table.get(&501), None);
    }
}
