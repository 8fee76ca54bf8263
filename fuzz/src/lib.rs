//! What the fuzz targets share: the input format for headers, the fixed keys, and the checks
//! every refusal must pass.
#![forbid(unsafe_code)]

use agentsync_webhooks_core::{
    WebhookError,
    adapter::{ErrorBody, Rejection},
};

/// The first Standard Webhooks test vector's secret: seeds signed with it verify.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The other two published vectors' secrets (a verifier may hold several, for rotation).
pub const OTHER_SECRETS: [&str; 2] = [
    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "whsec_plJ3nmyCDGBKInavdOK15jsl",
];
/// The published `v1a` vector's public key.
pub const PUBLIC_KEY: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
/// The published vectors' `webhook-timestamp`: the fuzzers' fixed "now".
pub const NOW: i64 = 1_614_265_330;

/// Splits `data` the way the seed files are written, like an HTTP/1 header block:
/// `name: value` lines (one optional space after the colon is dropped), an empty line, then the
/// body. Values are raw bytes; a line without a colon is a header with an empty value.
pub fn header_block(data: &[u8]) -> (Vec<(String, Vec<u8>)>, &[u8]) {
    let mut headers = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (line, after) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        if line.is_empty() {
            break;
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &line[line.len()..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        headers.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
    (headers, rest)
}

/// The first value of `name`, compared without case: what any `HeaderLookup` must return.
pub fn reference_lookup<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// What every refusal must satisfy: a status from the design's table (never 410), a stable
/// code, a JSON body with that code, and no secret in the message.
pub fn check_error(error: &WebhookError) {
    let status = error.status();
    assert_ne!(status, 410, "{error:?}");
    assert!(
        matches!(status, 200 | 400 | 401 | 408 | 409 | 413 | 503),
        "{status} for {error:?}"
    );
    let code = error.code();
    assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    // The answer the receive port gives for it, as every adapter sends it.
    let rejection = Rejection::new(error.clone(), None);
    assert_eq!(rejection.status(), status, "{error:?}");
    assert_eq!(rejection.code(), code, "{error:?}");
    assert_eq!(rejection.error(), Some(error));
    assert_eq!(rejection.retry_after(), error.retry_after(), "{error:?}");
    if status != 200 {
        let body: ErrorBody<'_> =
            serde_json::from_slice(rejection.body()).expect("the error body is JSON");
        assert_eq!(body.error, code);
        assert_eq!(rejection.content_type(), Some("application/json"));
        for secret in std::iter::once(SECRET).chain(OTHER_SECRETS) {
            assert!(!body.message.contains(&secret[6..]), "{error:?}");
        }
    } else {
        assert!(rejection.body().is_empty(), "{error:?}");
    }
}
