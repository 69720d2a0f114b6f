//! The hash of the routing table: method paths, hashed a word at a time.
//!
//! std's SipHash-1-3 took ~350 instructions per call to hash a 40-byte
//! `/package.Service/Method` path (callgrind, h2load 10 B unary), about 1% of a small
//! call. SipHash guards a table whose keys an attacker inserts; the router's keys are the
//! registered methods, fixed before serving, and a request only looks one up. A lookup
//! with a weak hash costs at most a probe of the few colliding registered keys, so the
//! multiply-rotate hash below (the one rustc uses for its own tables) is enough.

use std::hash::{BuildHasherDefault, Hasher};

/// `BuildHasher` for the router's table.
pub(crate) type PathHash = BuildHasherDefault<PathHasher>;

/// Multiply-rotate over 8-byte words (FxHash's step).
#[derive(Default, Clone, Copy)]
pub(crate) struct PathHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl PathHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word: [u8; 8] = chunk.try_into().expect("chunks_exact(8)");
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        // `str`'s Hash ends with 0xff; one step, not a padded word.
        self.add(u64::from(byte));
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

    fn hash(s: &str) -> u64 {
        PathHash::default().hash_one(s)
    }

    #[test]
    fn equal_paths_hash_equal_and_near_paths_differ() {
        assert_eq!(
            hash("/grpc.testing.TestService/UnaryCall"),
            hash(&String::from("/grpc.testing.TestService/UnaryCall"))
        );
        let near = [
            "/a.B/C",
            "/a.B/D",
            "/a.B/C\0",
            "/a.B/CC",
            "/grpc.testing.TestService/UnaryCall",
            "/grpc.testing.TestService/UnaryCalm",
            "/grpc.testing.TestService/StreamingCall",
            "",
            "\0",
            "\0\0",
        ];
        let hashes: HashSet<u64> = near.iter().map(|p| hash(p)).collect();
        assert_eq!(hashes.len(), near.len(), "a collision among {near:?}");
    }

    #[test]
    fn a_table_keyed_by_it_finds_what_was_put() {
        let mut table: HashMap<String, usize, PathHash> = HashMap::default();
        for i in 0..200 {
            table.insert(format!("/pkg.Service{}/Method{}", i % 7, i), i);
        }
        for i in 0..200 {
            assert_eq!(
                table.get(&format!("/pkg.Service{}/Method{}", i % 7, i)),
                Some(&i)
            );
        }
        assert_eq!(table.get("/pkg.Service0/Method1"), None);
    }
}
