//! Collecting a request body within a limit, chunk by chunk.

use bytes::{Buf, BufMut as _, Bytes, BytesMut};

use crate::WebhookError;

/// Collects body chunks up to a limit. Memory never exceeds the limit: a declared
/// `Content-Length` over it is refused before reading, and a stream that grows past it is
/// refused at the chunk that crosses it.
///
/// A body that arrives as one chunk (the usual case for a webhook) is kept as that chunk, shared
/// and uncopied; later chunks are appended to a buffer sized from the declared length.
#[derive(Debug)]
pub(crate) struct BodyCollector {
    body: Collected,
    expected: usize,
    limit: usize,
}

/// What has been collected so far.
#[derive(Debug)]
enum Collected {
    Empty,
    /// One chunk, as received.
    One(Bytes),
    /// Several chunks, copied together.
    Many(BytesMut),
}

impl BodyCollector {
    /// Starts collecting; `content_length` is the declared length, if any.
    pub(crate) fn new(content_length: Option<u64>, limit: usize) -> Result<Self, WebhookError> {
        check_content_length(content_length, limit)?;
        let expected = content_length.map_or(0, |n| usize::try_from(n).unwrap_or(limit));
        Ok(Self {
            body: Collected::Empty,
            expected: expected.min(limit),
            limit,
        })
    }

    /// Bytes collected so far.
    pub(crate) fn len(&self) -> usize {
        match &self.body {
            Collected::Empty => 0,
            Collected::One(chunk) => chunk.len(),
            Collected::Many(buf) => buf.len(),
        }
    }

    /// Appends a chunk (copied), or refuses it if the body would exceed the limit.
    #[cfg(test)]
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), WebhookError> {
        self.push_buf(chunk)
    }

    /// Appends a chunk, or refuses it if the body would exceed the limit. The first chunk is
    /// kept as it is when it is [`Bytes`] (no copy); the body's later chunks are copied.
    pub(crate) fn push_buf(&mut self, mut chunk: impl Buf) -> Result<(), WebhookError> {
        let len = chunk.remaining();
        if len > self.limit - self.len() {
            return Err(WebhookError::PayloadTooLarge { limit: self.limit });
        }
        if len == 0 {
            return Ok(());
        }
        self.body = match std::mem::replace(&mut self.body, Collected::Empty) {
            Collected::Empty => Collected::One(chunk.copy_to_bytes(len)),
            Collected::One(first) => {
                let mut buf = BytesMut::with_capacity(self.expected.max(first.len() + len));
                buf.put(first);
                buf.put(chunk);
                Collected::Many(buf)
            }
            Collected::Many(mut buf) => {
                buf.put(chunk);
                Collected::Many(buf)
            }
        };
        Ok(())
    }

    /// The whole body.
    pub(crate) fn finish(self) -> Bytes {
        match self.body {
            Collected::Empty => Bytes::new(),
            Collected::One(chunk) => chunk,
            Collected::Many(buf) => buf.freeze(),
        }
    }
}

/// Refuses a declared `Content-Length` over `limit` before any byte is read.
pub(crate) fn check_content_length(
    content_length: Option<u64>,
    limit: usize,
) -> Result<(), WebhookError> {
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
    fn one_chunk_is_kept_several_are_joined() {
        let first = Bytes::from_static(b"ab");
        let mut one = BodyCollector::new(Some(2), 4).unwrap();
        one.push_buf(first.clone()).unwrap();
        one.push_buf(Bytes::new()).unwrap();
        assert_eq!(one.len(), 2);
        assert_eq!(one.finish().as_ptr(), first.as_ptr());

        let mut many = BodyCollector::new(None, 5).unwrap();
        assert_eq!(many.len(), 0);
        many.push_buf(first).unwrap();
        many.push(b"c").unwrap();
        many.push_buf(Bytes::from_static(b"de")).unwrap();
        assert_eq!(
            many.push_buf(Bytes::from_static(b"f")).unwrap_err(),
            WebhookError::PayloadTooLarge { limit: 5 }
        );
        assert_eq!(&many.finish()[..], b"abcde");
        assert!(BodyCollector::new(None, 4).unwrap().finish().is_empty());
    }

    #[test]
    fn declared_length_is_checked_first() {
        assert!(BodyCollector::new(Some(4), 4).is_ok());
        assert!(BodyCollector::new(Some(u64::MAX), 4).is_err());
        assert!(check_content_length(Some(5), 4).is_err());
        assert!(check_content_length(None, 4).is_ok());
    }
}
