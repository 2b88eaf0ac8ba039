//! The hash chain: how a row's hash is computed, and the report of a verification.
//!
//! `hash = sha256(prev_hash || content)`, where `prev_hash` is the previous row's hash as 32 raw
//! bytes (all zero for the first row) and `content` is each of id, time, session, kind and payload
//! as an 8-byte little-endian length followed by its bytes (integers as 8-byte little-endian
//! values). The payload is hashed exactly as stored, so verifying never re-encodes JSON. Hashes are
//! stored as lowercase hex so that they read well in `sqlite3`.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The columns of one row that the hash covers.
pub(crate) struct RowContent<'a> {
    pub id: i64,
    pub time_ms: i64,
    pub session: &'a str,
    pub kind: &'a str,
    pub payload: &'a str,
}

/// The hex hash of a row whose predecessor's hash is `prev_hex`. A `prev_hex` that is not 64
/// hex digits (a hand-edited row) still hashes, as its text, so that verification reports a
/// mismatch rather than an error.
pub(crate) fn row_hash(prev_hex: &str, row: &RowContent<'_>) -> String {
    let mut h = Sha256::new();
    match decode_hex32(prev_hex) {
        Some(raw) => h.update(raw),
        None => h.update(prev_hex.as_bytes()),
    }
    for field in [&row.id.to_le_bytes()[..], &row.time_ms.to_le_bytes()[..]] {
        h.update(field);
    }
    for field in [row.session, row.kind, row.payload] {
        h.update((field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    hex(&h.finalize())
}

/// The SHA-256 of `bytes` as lowercase hex, for request, response and file hashes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// The outcome of [`Ledger::verify`](crate::Ledger::verify).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Rows found intact, in id order, before the first broken one (all rows when intact).
    pub checked: u64,
    /// The first row that breaks the chain, if any.
    pub broken: Option<Broken>,
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// A row that breaks the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub id: i64,
    pub reason: BreakReason,
}

/// How a row breaks the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakReason {
    /// The row's content does not hash to its stored hash: the row was altered.
    HashMismatch,
    /// The row's `prev_hash` is not the previous row's hash: a row before it was altered,
    /// removed or inserted.
    PrevMismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(payload: &str) -> RowContent<'_> {
        RowContent { id: 1, time_ms: 2, session: "s", kind: "note", payload }
    }

    #[test]
    fn hash_depends_on_every_field_and_the_predecessor() {
        let base = row_hash(GENESIS, &row("{}"));
        assert_eq!(base.len(), 64);
        assert_eq!(base, row_hash(GENESIS, &row("{}")));
        assert_ne!(base, row_hash(GENESIS, &row("{ }")));
        assert_ne!(base, row_hash(&sha256_hex(b"x"), &row("{}")));
        let moved = RowContent { session: "sn", kind: "ote", ..row("{}") };
        assert_ne!(base, row_hash(GENESIS, &moved), "field boundaries are part of the hash");
    }

    #[test]
    fn hex_round_trips() {
        let h = sha256_hex(b"abc");
        assert_eq!(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(&decode_hex32(&h).unwrap()), h);
        assert_eq!(decode_hex32("zz"), None);
    }
}
