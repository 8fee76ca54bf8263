//! Collecting a request body within a limit, for adapters that read a stream of chunks.

use bytes::{Bytes, BytesMut};

use crate::WebhookError;

/// The default body limit: 1 MiB, above the largest payload a Standard Webhooks sender sends.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Collects body chunks up to a limit. Memory never exceeds the limit: a declared
/// `Content-Length` over it is refused before reading, and a stream that grows past it is
/// refused at the chunk that crosses it.
///
/// ```
/// use agentsync_webhooks_core::BodyCollector;
///
/// let mut body = BodyCollector::new(Some(5), 8)?;
/// body.push(b"hello")?;
/// assert_eq!(&body.finish()[..], b"hello");
/// assert_eq!(BodyCollector::new(Some(9), 8).unwrap_err().status(), 413);
/// # Ok::<(), agentsync_webhooks_core::WebhookError>(())
/// ```
#[derive(Debug)]
pub struct BodyCollector {
    buf: BytesMut,
    limit: usize,
}

impl BodyCollector {
    /// Starts collecting; `content_length` is the declared length, if any.
    pub fn new(content_length: Option<u64>, limit: usize) -> Result<Self, WebhookError> {
        check_content_length(content_length, limit)?;
        let expected = content_length.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
        Ok(Self {
            buf: BytesMut::with_capacity(expected.min(limit)),
            limit,
        })
    }

    /// Appends a chunk, or refuses it if the body would exceed the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), WebhookError> {
        if chunk.len() > self.limit - self.buf.len() {
            return Err(WebhookError::PayloadTooLarge { limit: self.limit });
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Refuses a declared `Content-Length` over `limit` before any byte is read.
pub fn check_content_length(content_length: Option<u64>, limit: usize) -> Result<(), WebhookError> {
    match content_length {
        Some(n) if n > u64::try_from(limit).unwrap_or(u64::MAX) => {
            Err(WebhookError::PayloadTooLarge { limit })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_limit() {
        let mut body = BodyCollector::new(None, 4).unwrap();
        body.push(b"ab").unwrap();
        body.push(b"cd").unwrap();
        assert_eq!(
            body.push(b"e").unwrap_err(),
            WebhookError::PayloadTooLarge { limit: 4 }
        );
        assert_eq!(&body.finish()[..], b"abcd");
    }

    #[test]
    fn declared_length_is_checked_first() {
        assert!(BodyCollector::new(Some(4), 4).is_ok());
        assert!(BodyCollector::new(Some(u64::MAX), 4).is_err());
        assert!(check_content_length(Some(5), 4).is_err());
        assert!(check_content_length(None, 4).is_ok());
    }
}
