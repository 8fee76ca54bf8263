//! `webhook-signature`: a bounded, allocation-free walk over `version,base64` entries.

#[cfg(feature = "v1a")]
use base64::Engine as _;

#[cfg(any(feature = "v1a", test))]
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

    /// The examined entries: the header split at spaces, empty pieces skipped, at most
    /// [`MAX_SIGNATURE_ENTRIES`].
    fn pieces(self) -> Pieces<'h> {
        Pieces {
            rest: self.header,
            left: MAX_SIGNATURE_ENTRIES,
        }
    }

    /// `(version, encoded)` of each examined entry; an entry without a comma has no version.
    #[cfg(feature = "v1a")]
    fn entries(self) -> impl Iterator<Item = Option<(&'h [u8], &'h [u8])>> {
        self.pieces().map(|entry| {
            let comma = entry.iter().position(|b| *b == b',')?;
            Some((&entry[..comma], &entry[comma + 1..]))
        })
    }

    /// The well-formed entries of one version, decoded.
    #[cfg(feature = "v1a")]
    fn decoded<const N: usize>(self, version: &'static [u8]) -> impl Iterator<Item = [u8; N]> {
        self.entries()
            .flatten()
            .filter(move |(v, _)| *v == version)
            .filter_map(|(_, encoded)| decode::<N>(encoded))
    }

    /// The text of every `v1` entry shaped like a tag ([`tag_text`]), to compare with the
    /// expected tag's own text ([`encode_tag`]) rather than decode each one.
    pub fn v1_texts(self) -> impl Iterator<Item = &'h [u8; V1_CHARS]> {
        self.pieces()
            .filter_map(|entry| entry.strip_prefix(b"v1,"))
            .filter_map(tag_text)
    }

    /// The well-formed `v1` tags, decoded by [`decode_tag`] (for the error's count).
    fn v1(self) -> impl Iterator<Item = [u8; V1_LEN]> {
        // An entry's version is what comes before its first comma: `v1` exactly when the entry
        // starts with `v1,`.
        self.pieces()
            .filter_map(|entry| entry.strip_prefix(b"v1,"))
            .filter_map(decode_tag)
    }

    /// The well-formed `v1a` signatures.
    #[cfg(feature = "v1a")]
    pub fn v1a(self) -> impl Iterator<Item = [u8; V1A_LEN]> {
        self.decoded(b"v1a")
    }

    /// How many entries were examined, up to [`MAX_SIGNATURE_ENTRIES`] (for the error message).
    pub fn entries_examined(self) -> usize {
        self.pieces().count()
    }

    /// How many examined entries are well-formed signatures of a known version.
    pub fn usable(self) -> usize {
        #[cfg(feature = "v1a")]
        return self.v1().count() + self.v1a().count();
        #[cfg(not(feature = "v1a"))]
        self.v1().count()
    }
}

/// The walk of [`Candidates::pieces`]: what `split(' ')`, a filter of empty pieces and `take`
/// do, with the next space found a word at a time.
struct Pieces<'h> {
    rest: &'h [u8],
    left: usize,
}

impl<'h> Iterator for Pieces<'h> {
    type Item = &'h [u8];

    fn next(&mut self) -> Option<&'h [u8]> {
        if self.left == 0 {
            return None;
        }
        while let [b' ', tail @ ..] = self.rest {
            self.rest = tail;
        }
        if self.rest.is_empty() {
            return None;
        }
        let (piece, rest) = self.rest.split_at(find_space(self.rest));
        self.rest = rest;
        self.left -= 1;
        Some(piece)
    }
}

/// The index of the first space in `bytes`, or its length: eight bytes at a time (a byte equal
/// to a space is a zero byte of the word XOR spaces; the lowest such byte is found exactly).
fn find_space(bytes: &[u8]) -> usize {
    const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let (words, tail) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*word) ^ SPACES;
        let zero = x.wrapping_sub(LOW) & !x & HIGH;
        if zero != 0 {
            return i * 8 + (zero.trailing_zeros() / 8) as usize;
        }
    }
    let start = bytes.len() - tail.len();
    tail.iter()
        .position(|b| *b == b' ')
        .map_or(bytes.len(), |p| start + p)
}

/// Length of a `v1` tag's text, without its padding.
pub(crate) const V1_CHARS: usize = 43;

/// The 43 characters of an entry's text that could be a `v1` tag: exactly 43, or 43 then one
/// `=`. Whether they are base64 is left to the comparison with [`encode_tag`]'s text, which only
/// the one canonical encoding of the expected tag can pass.
pub(crate) fn tag_text(encoded: &[u8]) -> Option<&[u8; V1_CHARS]> {
    match encoded {
        [chars @ .., b'='] if chars.len() == V1_CHARS => chars.try_into().ok(),
        _ => encoded.try_into().ok(),
    }
}

/// The standard base64 alphabet, in one 64-byte cache line: the lookups of
/// [`encode_tag`] index it with the expected tag, and a table within one line shows no
/// line-by-line access pattern to a cache-timing observer.
#[repr(align(64))]
struct Alphabet([u8; 64]);
static ALPHABET: Alphabet =
    Alphabet(*b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");

/// The expected tag as the 43 characters [`BASE64`] would write for it, unpadded (the last
/// character's two unused bits zero). An entry's text equals this exactly when it decodes, as
/// [`decode_tag`] decodes, to the same tag: one encode per secret instead of a decode per entry.
pub(crate) fn encode_tag(tag: &[u8; V1_LEN]) -> [u8; V1_CHARS] {
    let mut text = [0u8; V1_CHARS];
    // Five runs of six bytes (eight characters each), then two bytes (three characters).
    let (sextets, tail) = tag.as_chunks::<6>();
    let (octets, last) = text.as_chunks_mut::<8>();
    for (sextet, octet) in sextets.iter().zip(octets) {
        let mut word = [0u8; 8];
        word[2..].copy_from_slice(sextet);
        let n = u64::from_be_bytes(word);
        for (i, char) in octet.iter_mut().enumerate() {
            *char = ALPHABET.0[(n >> (42 - 6 * i) & 63) as usize];
        }
    }
    let n = u32::from(tail[0]) << 10 | u32::from(tail[1]) << 2;
    for (i, char) in last.iter_mut().enumerate() {
        *char = ALPHABET.0[(n >> (12 - 6 * i) & 63) as usize];
    }
    text
}

/// Whether two tags' texts are equal, in time independent of where they differ: the words'
/// XORs are OR-ed together and only the result goes through `subtle`'s opaque comparison.
pub(crate) fn texts_equal(a: &[u8; V1_CHARS], b: &[u8; V1_CHARS]) -> bool {
    let (a_words, a_tail) = a.as_chunks::<8>();
    let (b_words, b_tail) = b.as_chunks::<8>();
    let words = a_words.iter().zip(b_words).fold(0u64, |acc, (x, y)| {
        acc | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y))
    });
    let tail = a_tail
        .iter()
        .zip(b_tail)
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    bool::from(subtle::ConstantTimeEq::ct_eq(
        &(words | u64::from(tail)),
        &0,
    ))
}

/// The value of each base64 character of the standard alphabet; `INVALID` for every other byte.
const INVALID: u8 = 0x80;
const SYMBOLS: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// A `v1` tag: exactly what [`BASE64`] decodes to 32 bytes (43 characters, then one `=` or
/// none; the two unused bits of the last character zero), without its general decoder's length
/// estimate, chunking and padding search. The input is the sender's header, not a secret.
pub(crate) fn decode_tag(encoded: &[u8]) -> Option<[u8; V1_LEN]> {
    let chars: &[u8; 43] = match encoded {
        [chars @ .., b'='] if chars.len() == 43 => chars.try_into().ok()?,
        _ => encoded.try_into().ok()?,
    };
    // Five runs of eight characters (six bytes each), then three characters (two bytes).
    let (octets, last) = chars.as_chunks::<8>();
    let mut tag = [0u8; V1_LEN];
    let (sextets, tail) = tag.as_chunks_mut::<6>();
    let mut invalid = 0u8;
    for (octet, sextet) in octets.iter().zip(sextets) {
        let mut n = 0u64;
        for byte in octet {
            let value = SYMBOLS[usize::from(*byte)];
            invalid |= value;
            n = n << 6 | u64::from(value);
        }
        sextet.copy_from_slice(&n.to_be_bytes()[2..]);
    }
    let mut n = 0u32;
    for byte in last {
        let value = SYMBOLS[usize::from(*byte)];
        invalid |= value;
        n = n << 6 | u32::from(value);
    }
    tail.copy_from_slice(&[(n >> 10) as u8, (n >> 2) as u8]);
    // `INVALID` is the only value with its high bit set; non-zero trailing bits are refused, as
    // `BASE64` refuses them.
    (invalid & INVALID == 0 && n & 0b11 == 0).then_some(tag)
}

#[cfg(feature = "v1a")]
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
    use base64::Engine as _;

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
    fn pieces_split_as_split_does() {
        let headers: [&[u8]; 9] = [
            b"",
            b"   ",
            b"a",
            b" a  bb   ccc ",
            b"0123456789abcdef 0123456789abcdefg  x",
            b"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,x",
            b"        x        y",
            b"\t a\xa0b\x80 \xffc",
            &[b'x'; 100],
        ];
        for header in headers {
            let ours: Vec<&[u8]> = Candidates::parse(header).pieces().collect();
            let split: Vec<&[u8]> = header
                .split(|b| *b == b' ')
                .filter(|e| !e.is_empty())
                .take(MAX_SIGNATURE_ENTRIES)
                .collect();
            assert_eq!(ours, split, "{:?}", String::from_utf8_lossy(header));
        }
        for n in 0..40 {
            let mut header = vec![b'a'; n];
            header.push(b' ');
            header.extend_from_slice(&[b'b'; 9]);
            assert_eq!(find_space(&header), n);
            assert_eq!(find_space(&header[..n]), n);
        }
    }

    #[test]
    fn wrong_lengths_are_skipped() {
        let long = format!("v1,{}", base64::Engine::encode(&BASE64, [0u8; 33]));
        let short = format!("v1,{}", base64::Engine::encode(&BASE64, [0u8; 31]));
        assert_eq!(Candidates::parse(long.as_bytes()).usable(), 0);
        assert_eq!(Candidates::parse(short.as_bytes()).usable(), 0);
        assert_eq!(Candidates::parse(&[0xff, b',', 0xfe]).usable(), 0);
    }

    /// The hand-written `v1` decoder accepts exactly what `BASE64` decodes to 32 bytes.
    #[test]
    fn tags_decode_as_base64_does() {
        let reference = |encoded: &[u8]| -> Option<[u8; V1_LEN]> {
            let mut buf = [0u8; 72];
            if encoded.len() > 44 {
                return None;
            }
            match BASE64.decode_slice(encoded, &mut buf) {
                Ok(32) => buf[..32].try_into().ok(),
                _ => None,
            }
        };
        let good = &GOOD.as_bytes()[3..];
        let mut inputs: Vec<Vec<u8>> = vec![
            good.to_vec(),
            good[..43].to_vec(),
            good[..42].to_vec(),
            [good, b"="].concat(),
            [&good[..43], b"A"].concat(),
            [&good[..42], b"=="].concat(),
            [&good[..43], b"=="].concat(),
            Vec::new(),
        ];
        // Every byte value at every position, and every last character (trailing bits).
        for position in [0, 17, 39, 40, 41, 42, 43] {
            for byte in 0..=255u8 {
                let mut input = good.to_vec();
                input[position] = byte;
                inputs.push(input.clone());
                input.truncate(43.max(position + 1));
                inputs.push(input);
            }
        }
        for tag in [
            [0u8; 32],
            [0xff; 32],
            std::array::from_fn(|i| (i as u8).wrapping_mul(37)),
        ] {
            let encoded = base64::Engine::encode(&BASE64, tag);
            assert_eq!(decode_tag(encoded.as_bytes()), Some(tag));
            inputs.push(encoded.into_bytes());
        }
        for input in &inputs {
            assert_eq!(
                decode_tag(input),
                reference(input),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn texts_compare_whole() {
        let text = [b'7'; V1_CHARS];
        assert!(texts_equal(&text, &text));
        for i in 0..V1_CHARS {
            for flip in [0x01, 0x80] {
                let mut other = text;
                other[i] ^= flip;
                assert!(!texts_equal(&text, &other), "byte {i}");
            }
        }
    }

    /// The expected tag's text is `BASE64`'s, unpadded; an entry's text matches it exactly when
    /// the entry decodes to that tag, so comparing texts accepts what decoding accepted.
    #[test]
    fn tag_texts_match_exactly_what_decodes_to_the_tag() {
        let tags = [
            [0u8; 32],
            [0xff; 32],
            std::array::from_fn(|i| (i as u8).wrapping_mul(37)),
            std::array::from_fn(|i| 255 - i as u8),
        ];
        for tag in tags {
            let text = encode_tag(&tag);
            assert_eq!(
                text.as_slice(),
                base64::Engine::encode(&BASE64, tag)
                    .trim_end_matches('=')
                    .as_bytes()
            );
            let padded = [&text[..], b"="].concat();
            let mut inputs = vec![text.to_vec(), padded.clone(), [&text[..], b"=="].concat()];
            for position in 0..padded.len() {
                for byte in 0..=255u8 {
                    let mut input = padded.clone();
                    input[position] = byte;
                    inputs.push(input.clone());
                    input.truncate(V1_CHARS);
                    inputs.push(input);
                }
            }
            for input in &inputs {
                let by_text = tag_text(input).is_some_and(|t| texts_equal(t, &text));
                let by_decode = decode_tag(input) == Some(tag);
                assert_eq!(by_text, by_decode, "{:?}", String::from_utf8_lossy(input));
            }
        }
    }
}
