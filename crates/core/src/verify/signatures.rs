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

/// The well-formed signatures of a header, decoded onto the stack.
pub(crate) struct Candidates {
    /// How many entries the header had, up to [`MAX_SIGNATURE_ENTRIES`].
    pub entries: usize,
    v1: [[u8; V1_LEN]; MAX_SIGNATURE_ENTRIES],
    v1_len: usize,
    #[cfg(feature = "v1a")]
    v1a: [[u8; V1A_LEN]; MAX_SIGNATURE_ENTRIES],
    #[cfg(feature = "v1a")]
    v1a_len: usize,
}

impl Candidates {
    /// Decodes the first [`MAX_SIGNATURE_ENTRIES`] entries; malformed ones and unknown versions
    /// are skipped.
    pub fn parse(header: &[u8]) -> Self {
        let mut out = Self {
            entries: 0,
            v1: [[0; V1_LEN]; MAX_SIGNATURE_ENTRIES],
            v1_len: 0,
            #[cfg(feature = "v1a")]
            v1a: [[0; V1A_LEN]; MAX_SIGNATURE_ENTRIES],
            #[cfg(feature = "v1a")]
            v1a_len: 0,
        };
        let entries = header.split(|b| *b == b' ').filter(|e| !e.is_empty());
        for entry in entries.take(MAX_SIGNATURE_ENTRIES) {
            out.entries += 1;
            let Some(comma) = entry.iter().position(|b| *b == b',') else {
                continue;
            };
            let (version, encoded) = (&entry[..comma], &entry[comma + 1..]);
            match version {
                b"v1" => {
                    if let Some(tag) = decode::<V1_LEN>(encoded) {
                        out.v1[out.v1_len] = tag;
                        out.v1_len += 1;
                    }
                }
                #[cfg(feature = "v1a")]
                b"v1a" => {
                    if let Some(sig) = decode::<V1A_LEN>(encoded) {
                        out.v1a[out.v1a_len] = sig;
                        out.v1a_len += 1;
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Decoded `v1` tags.
    pub fn v1(&self) -> &[[u8; V1_LEN]] {
        &self.v1[..self.v1_len]
    }

    /// Decoded `v1a` signatures.
    #[cfg(feature = "v1a")]
    pub fn v1a(&self) -> &[[u8; V1A_LEN]] {
        &self.v1a[..self.v1a_len]
    }

    /// How many entries were usable signatures.
    pub fn usable(&self) -> usize {
        #[cfg(feature = "v1a")]
        return self.v1_len + self.v1a_len;
        #[cfg(not(feature = "v1a"))]
        self.v1_len
    }
}

/// Decodes base64 of exactly `N` bytes, without allocating.
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
        assert_eq!(c.v1().len(), 1);
        assert_eq!(c.entries, 8);
        assert_eq!(c.usable(), 1);
    }

    #[test]
    fn unpadded_tags_are_accepted() {
        let unpadded = GOOD.trim_end_matches('=');
        assert_eq!(Candidates::parse(unpadded.as_bytes()).v1().len(), 1);
    }

    #[test]
    fn examines_a_bounded_number_of_entries() {
        let mut header = "v1,xx ".repeat(MAX_SIGNATURE_ENTRIES);
        header.push_str(GOOD);
        let c = Candidates::parse(header.as_bytes());
        assert_eq!((c.entries, c.usable()), (MAX_SIGNATURE_ENTRIES, 0));
        let full = [GOOD; MAX_SIGNATURE_ENTRIES + 4].join(" ");
        assert_eq!(
            Candidates::parse(full.as_bytes()).v1().len(),
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
}
