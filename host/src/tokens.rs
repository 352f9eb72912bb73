//! Signed tokens: the `+TOKEN` of VERP return paths and confirmation addresses, and the
//! `{token}` of unsubscribe and tracking links.
//!
//! A token is a few numbers (row ids) and an HMAC-SHA256 tag over them and the token's
//! purpose, in lower-case base32 so that it survives MTAs that fold the case of local parts.
//! It carries no readable address. A token for one purpose never verifies for another, and
//! any changed character makes it fail. The key is shared by the cluster (see
//! `Store::token_key`), so any node checks any node's tokens.

use ring::hmac;

/// What a token is for; part of what is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    /// VERP return path: recipient row, member.
    Verp = 1,
    /// Unsubscribe link: member, recipient row (the copy it came in).
    Unsubscribe = 2,
    /// Tracked link: recipient row, link number.
    Click = 3,
    /// Open pixel: recipient row.
    Open = 4,
    /// Confirmation address or link.
    Confirm = 5,
}

/// Bytes of the HMAC kept in a token: 2^64 guesses to forge one.
const TAG_LEN: usize = 8;
/// Fields a token carries at most (keeps decoding bounded).
const MAX_FIELDS: usize = 4;

#[derive(Clone)]
pub struct TokenKey(hmac::Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(secret: &[u8]) -> TokenKey {
        TokenKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// A token for `fields` (at most four numbers).
    pub fn sign(&self, purpose: Purpose, fields: &[u64]) -> String {
        let mut bytes = Vec::with_capacity(fields.len() * 3 + TAG_LEN);
        for &f in fields.iter().take(MAX_FIELDS) {
            put_varint(&mut bytes, f);
        }
        let tag = self.tag(purpose, &bytes);
        bytes.extend_from_slice(&tag);
        base32(&bytes)
    }

    /// The fields of a token signed for `purpose`; `None` when it is malformed, altered or
    /// signed for something else.
    pub fn verify(&self, purpose: Purpose, token: &str) -> Option<Vec<u64>> {
        if token.len() > 64 {
            return None;
        }
        let bytes = unbase32(token)?;
        if bytes.len() <= TAG_LEN {
            return None;
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        // Constant-time comparison of the truncated tag.
        let expected = self.tag(purpose, payload);
        if !ring_eq(&expected, tag) {
            return None;
        }
        let mut fields = Vec::new();
        let mut rest = payload;
        while !rest.is_empty() {
            if fields.len() == MAX_FIELDS {
                return None;
            }
            let (v, used) = get_varint(rest)?;
            fields.push(v);
            rest = &rest[used..];
        }
        Some(fields)
    }

    fn tag(&self, purpose: Purpose, payload: &[u8]) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&[purpose as u8]);
        ctx.update(payload);
        let full = ctx.sign();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        tag
    }
}

fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A value and the bytes it used; rejects over-long encodings so each value has one form.
fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return None;
            }
            return Some((v, i + 1));
        }
    }
    None
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Case-insensitive: some MTAs fold local parts to upper or lower case.
fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buf = (buf << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    // Leftover bits must be zero padding, so each token has exactly one spelling.
    if bits >= 5 || buf & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = TokenKey::new(b"secret");
        let t = key.sign(Purpose::Verp, &[123_456, 7]);
        assert!(t.len() < 30, "{t}");
        assert_eq!(key.verify(Purpose::Verp, &t), Some(vec![123_456, 7]));
        assert_eq!(
            key.verify(Purpose::Verp, &t.to_uppercase()),
            Some(vec![123_456, 7])
        );
        assert_eq!(key.verify(Purpose::Unsubscribe, &t), None);
        assert_eq!(TokenKey::new(b"other").verify(Purpose::Verp, &t), None);
        for i in 0..t.len() {
            let mut bad = t.clone().into_bytes();
            bad[i] = if bad[i] == b'a' { b'b' } else { b'a' };
            let bad = String::from_utf8(bad).unwrap();
            assert_eq!(key.verify(Purpose::Verp, &bad), None, "{bad}");
        }
        assert_eq!(key.verify(Purpose::Verp, ""), None);
        assert_eq!(key.verify(Purpose::Verp, "!!"), None);
        assert_eq!(key.verify(Purpose::Verp, &"a".repeat(200)), None);
    }

    #[test]
    fn base32_round_trips() {
        for n in 0..20u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(unbase32(&base32(&bytes)).unwrap(), bytes);
        }
    }
}
