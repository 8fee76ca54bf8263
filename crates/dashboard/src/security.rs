//! The checks before an action: the request is same-origin (the way Sidekiq 8.1 and Go's
//! `CrossOriginProtection` tell, from the headers a browser sets and a page cannot forge), and
//! the optional basic-auth credentials.

use base64::Engine as _;
use http::{HeaderMap, Uri, header};

/// Why a `POST` is refused as cross-origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrossOrigin {
    /// `Sec-Fetch-Site` says the request came from another site (or none).
    FetchSite,
    /// `Origin` names another host than `Host`.
    Origin,
    /// Neither header: not a browser's form, or a browser too old to tell.
    Unknown,
}

impl CrossOrigin {
    /// What the 403 page says.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::FetchSite => {
                "refused: the browser says this request did not come from the dashboard's own \
                 pages (Sec-Fetch-Site)"
            }
            Self::Origin => {
                "refused: the request's Origin is not the dashboard's host (a cross-site form)"
            }
            Self::Unknown => {
                "refused: an action needs a same-origin request (Sec-Fetch-Site: same-origin, \
                 or an Origin that matches the Host); use the dashboard's buttons, or the queue's \
                 API or CLI from scripts"
            }
        }
    }
}

/// `Ok` when `headers` show a same-origin request: `Sec-Fetch-Site: same-origin`, or, without
/// that header, an `Origin` whose host and port are the `Host`'s (or `uri`'s authority).
pub(crate) fn same_origin(headers: &HeaderMap, uri: &Uri) -> Result<(), CrossOrigin> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return if site.as_bytes().eq_ignore_ascii_case(b"same-origin") {
            Ok(())
        } else {
            Err(CrossOrigin::FetchSite)
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Err(CrossOrigin::Unknown);
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| uri.authority().map(http::uri::Authority::as_str));
    let (Ok(origin), Some(host)) = (origin.to_str(), host) else {
        return Err(CrossOrigin::Origin);
    };
    let Some((scheme, origin_host)) = origin.split_once("://") else {
        // `Origin: null` (a sandboxed frame, a redirect across origins) and anything else.
        return Err(CrossOrigin::Origin);
    };
    let scheme = scheme.to_ascii_lowercase();
    if authority(&scheme, origin_host) == authority(&scheme, host) {
        Ok(())
    } else {
        Err(CrossOrigin::Origin)
    }
}

/// `host[:port]` lower-cased, without the scheme's default port.
fn authority(scheme: &str, host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return host,
    };
    host.strip_suffix(default)
        .map(str::to_owned)
        .unwrap_or(host)
}

/// Credentials that basic auth asks for. `Debug` never shows the password.
#[derive(Clone)]
pub(crate) struct BasicAuth {
    user: String,
    password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl BasicAuth {
    pub(crate) fn new(user: String, password: String) -> Self {
        Self { user, password }
    }

    /// Whether `headers` carry these credentials (`Authorization: Basic ...`), compared in
    /// constant time.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, rest) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
            })
            .and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
            })
        else {
            return false;
        };
        let expected = format!("{}:{}", self.user, self.password);
        constant_time_eq(&given, expected.as_bytes())
    }
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, byte) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn sec_fetch_site_decides_when_present() {
        let uri = Uri::from_static("/deliveries/x/replay");
        assert_eq!(
            same_origin(&headers(&[("sec-fetch-site", "same-origin")]), &uri),
            Ok(())
        );
        for site in ["cross-site", "same-site", "none"] {
            let value = HeaderValue::from_str(site).unwrap();
            let mut map = headers(&[("origin", "http://dash.test"), ("host", "dash.test")]);
            map.insert("sec-fetch-site", value);
            assert_eq!(
                same_origin(&map, &uri),
                Err(CrossOrigin::FetchSite),
                "{site}"
            );
        }
    }

    #[test]
    fn origin_must_match_the_host_without_sec_fetch_site() {
        let uri = Uri::from_static("/x");
        let check = |origin: &'static str, host: &'static str| {
            same_origin(&headers(&[("origin", origin), ("host", host)]), &uri)
        };
        assert_eq!(check("http://127.0.0.1:8081", "127.0.0.1:8081"), Ok(()));
        assert_eq!(
            check("https://Ops.Example.com", "ops.example.com:443"),
            Ok(())
        );
        assert_eq!(
            check("http://ops.example.com:80", "ops.example.com"),
            Ok(())
        );
        assert_eq!(
            check("http://evil.test", "127.0.0.1:8081"),
            Err(CrossOrigin::Origin)
        );
        assert_eq!(
            check("http://127.0.0.1:9999", "127.0.0.1:8081"),
            Err(CrossOrigin::Origin)
        );
        assert_eq!(check("null", "127.0.0.1:8081"), Err(CrossOrigin::Origin));
        assert_eq!(
            same_origin(
                &headers(&[("origin", "http://a.test")]),
                &"http://a.test/x".parse().unwrap()
            ),
            Ok(())
        );
        assert_eq!(same_origin(&headers(&[]), &uri), Err(CrossOrigin::Unknown));
        assert_eq!(
            same_origin(&headers(&[("host", "127.0.0.1:8081")]), &uri),
            Err(CrossOrigin::Unknown)
        );
    }

    #[test]
    fn basic_auth_takes_only_its_credentials() {
        let auth = BasicAuth::new("ops".into(), "s3cret".into());
        // "ops:s3cret"
        assert!(auth.allows(&headers(&[("authorization", "Basic b3BzOnMzY3JldA==")])));
        assert!(auth.allows(&headers(&[("authorization", "basic  b3BzOnMzY3JldA==")])));
        // "ops:s3cre", "ops:s3cret!"
        assert!(!auth.allows(&headers(&[("authorization", "Basic b3BzOnMzY3Jl")])));
        assert!(!auth.allows(&headers(&[("authorization", "Basic b3BzOnMzY3JldCE=")])));
        assert!(!auth.allows(&headers(&[("authorization", "Bearer b3BzOnMzY3JldA==")])));
        assert!(!auth.allows(&headers(&[])));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
