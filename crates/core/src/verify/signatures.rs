//! `webhook-signature`: a bounded, allocation-free walk over `version,base64` entries.

use base64::Engine as _;

use crate::secret::BASE64;

/// At most this many entries are examined; the rest are ignored.
pub const MAX_SIGNATURE_ENTRIES: usize = 16;

/// Length of a decoded `v1` tag (HMAC-SHA256).
const V1_LEN: usize = 32;
/// Length of a decoded `v1a` signature (Ed25519).
#[cfg(feature = "v1a")]
const V1A_LEN: usize = 64;

/// The entries of a `webhook-signature` header, decoded one at a time as they are compared.
///
/// Nothing is decoded up front: a header with one `v1` entry (every real delivery) costs one
/// base64 decode per secret, and no buffer sized for the worst case is zeroed or moved.
#[derive(Clone, Copy)]
pub(crate) struct Candidates<'h> {
    header: &'h [u8],
}

impl<'h> Candidates<'h> {
    /// The header's first [`MAX_SIGNATURE_ENTRIES`] entries; malformed ones and unknown versions
    /// are skipped as they are met.
    pub fn parse(header: &'h [u8]) -> Self {
        Self { header }
    }

    /// `(version, encoded)` of each examined entry; an entry without a comma has no version.
    fn entries(self) -> impl Iterator<Item = Option<(&'h [u8], &'h [u8])>> {
        self.header
            .split(|b| *b == b' ')
            .filter(|e| !e.is_empty())
            .take(MAX_SIGNATURE_ENTRIES)
            .map(|entry| {
                let comma = entry.iter().position(|b| *b == b',')?;
                Some((&entry[..comma], &entry[comma + 1..]))
            })
    }

    /// The well-formed entries of one version, decoded.
    fn decoded<const N: usize>(self, version: &'static [u8]) -> impl Iterator<Item = [u8; N]> {
        self.entries()
            .flatten()
            .filter(move |(v, _)| *v == version)
            .filter_map(|(_, encoded)| decode::<N>(encoded))
    }

    /// The well-formed `v1` tags.
    pub fn v1(self) -> impl Iterator<Item = [u8; V1_LEN]> {
        self.decoded(b"v1")
    }

    /// The well-formed `v1a` signatures.
    #[cfg(feature = "v1a")]
    pub fn v1a(self) -> impl Iterator<Item = [u8; V1A_LEN]> {
        self.decoded(b"v1a")
    }

    /// How many entries were examined, up to [`MAX_SIGNATURE_ENTRIES`] (for the error message).
    pub fn entries_examined(self) -> usize {
        self.entries().count()
    }

    /// How many examined entries are well-formed signatures of a known version.
    pub fn usable(self) -> usize {
        #[cfg(feature = "v1a")]
        return self.v1().count() + self.v1a().count();
        #[cfg(not(feature = "v1a"))]
        self.v1().count()
    }
}

/// Whether two `v1` tags are equal, in time independent of where they differ: the words' XORs
/// are OR-ed together and only the result goes through `subtle`'s opaque comparison.
pub(crate) fn tags_equal(a: &[u8; V1_LEN], b: &[u8; V1_LEN]) -> bool {
    let (a, _) = a.as_chunks::<8>();
    let (b, _) = b.as_chunks::<8>();
    let diff = a.iter().zip(b).fold(0u64, |acc, (x, y)| {
        acc | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y))
    });
    bool::from(subtle::ConstantTimeEq::ct_eq(&diff, &0))
}

fn decode<const N: usize>(encoded: &[u8]) -> Option<[u8; N]> {
    // Room for the decoder's length estimate of any input that could hold N bytes.
    let mut buf = [0u8; 72];
    if encoded.len() > N.div_ceil(3) * 4 {
        return None;
    }
    match BASE64.decode_slice(encoded, &mut buf) {
        Ok(len) if len == N => buf[..N].try_into().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn skips_malformed_entries() {
        let header = format!(
            "v1, v1 v2,{} garbage ,,, {GOOD} v1,AAAA v1,g0hM9SsE",
            &GOOD[3..]
        );
        let c = Candidates::parse(header.as_bytes());
        assert_eq!(c.v1().count(), 1);
        assert_eq!(c.entries_examined(), 8);
        assert_eq!(c.usable(), 1);
    }

    #[test]
    fn unpadded_tags_are_accepted() {
        let unpadded = GOOD.trim_end_matches('=');
        assert_eq!(Candidates::parse(unpadded.as_bytes()).v1().count(), 1);
    }

    #[test]
    fn examines_a_bounded_number_of_entries() {
        let mut header = "v1,xx ".repeat(MAX_SIGNATURE_ENTRIES);
        header.push_str(GOOD);
        let c = Candidates::parse(header.as_bytes());
        assert_eq!(
            (c.entries_examined(), c.usable()),
            (MAX_SIGNATURE_ENTRIES, 0)
        );
        let full = [GOOD; MAX_SIGNATURE_ENTRIES + 4].join(" ");
        assert_eq!(
            Candidates::parse(full.as_bytes()).v1().count(),
            MAX_SIGNATURE_ENTRIES
        );
    }

    #[test]
    fn wrong_lengths_are_skipped() {
        let long = format!("v1,{}", base64::Engine::encode(&BASE64, [0u8; 33]));
        let short = format!("v1,{}", base64::Engine::encode(&BASE64, [0u8; 31]));
        assert_eq!(Candidates::parse(long.as_bytes()).usable(), 0);
        assert_eq!(Candidates::parse(short.as_bytes()).usable(), 0);
        assert_eq!(Candidates::parse(&[0xff, b',', 0xfe]).usable(), 0);
    }

    #[test]
    fn tags_compare_whole() {
        let tag = [7u8; V1_LEN];
        assert!(tags_equal(&tag, &tag));
        for i in 0..V1_LEN {
            let mut other = tag;
            other[i] ^= 0x80;
            assert!(!tags_equal(&tag, &other), "byte {i}");
        }
    }
}
