//! A saved delivery: what `listen --save` writes and `replay` reads. An HTTP request dump,
//! readable and greppable, that `verify --headers FILE` also reads (it stops at the blank line):
//!
//! ```text
//! POST /webhooks/psapi HTTP/1.1
//! content-type: application/json
//! webhook-id: msg_...
//! webhook-timestamp: 1764700000
//! webhook-signature: v1,...
//!
//! {"id":"whe_...","type":"contract.updated",...}
//! ```
//!
//! The body after the blank line is the exact bytes received, without an added newline.

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// `POST`.
    pub method: String,
    /// The request path.
    pub path: String,
    /// Every header, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

impl Capture {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = format!("{} {} HTTP/1.1\n", self.method, self.path).into_bytes();
        for (name, value) in &self.headers {
            bytes.extend_from_slice(format!("{name}: {value}\n").as_bytes());
        }
        bytes.push(b'\n');
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Reads a file written by [`Capture::to_bytes`] (CRLF line ends accepted too).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let (head, body) = split_head(bytes)
            .ok_or("no blank line after the headers: not a delivery saved by `listen --save`")?;
        let head = std::str::from_utf8(head).map_err(|_| "the headers are not UTF-8")?;
        let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
        let request_line = lines.next().unwrap_or_default();
        let mut words = request_line.split_whitespace();
        let (Some(method), Some(path), Some(version)) = (words.next(), words.next(), words.next())
        else {
            return Err(format!(
                "the first line {request_line:?} is not a request line such as \
                 `POST /webhooks/psapi HTTP/1.1`"
            ));
        };
        if !version.starts_with("HTTP/") {
            return Err(format!(
                "the first line {request_line:?} is not a request line"
            ));
        }
        let mut headers = Vec::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("{line:?} is not a `name: value` header line"));
            };
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        Ok(Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers,
            body: body.to_vec(),
        })
    }
}

/// The bytes before the first blank line, and those after it.
fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut start = 0;
    while let Some(offset) = bytes[start..].iter().position(|&b| b == b'\n') {
        let end = start + offset;
        let line = &bytes[start..end];
        if line.is_empty() || line == b"\r" {
            return Some((&bytes[..start], &bytes[end + 1..]));
        }
        start = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exact_bodies() {
        let capture = Capture {
            method: "POST".into(),
            path: "/webhooks/psapi".into(),
            headers: vec![("webhook-id".into(), "msg_1".into())],
            body: b"{\n\n}\r\n".to_vec(),
        };
        let bytes = capture.to_bytes();
        assert_eq!(Capture::parse(&bytes).unwrap(), capture);
        let crlf = b"POST /x HTTP/1.1\r\nWebhook-Id: a\r\n\r\nbody";
        let parsed = Capture::parse(crlf).unwrap();
        assert_eq!(parsed.header("webhook-id"), Some("a"));
        assert_eq!(parsed.body, b"body");
        assert!(Capture::parse(b"no blank line").is_err());
        assert!(Capture::parse(b"not a request\n\n").is_err());
    }
}
