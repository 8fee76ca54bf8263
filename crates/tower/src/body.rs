//! Request bodies in (collected within the limit) and response bodies out.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use agentsync_webhooks_core::{BodyCollector, WebhookError};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Full};
use pin_project_lite::pin_project;

use crate::BoxError;

/// The declared length of a request body: its `Content-Length`, else the body's exact size hint.
///
/// Used to refuse an oversized body before reading a byte of it.
pub fn content_length(headers: &HeaderMap, body: &impl Body) -> Option<u64> {
    agentsync_webhooks_core::headers::content_length(headers).or_else(|| body.size_hint().exact())
}

/// Reads `body` frame by frame into `collector`, stopping at the first chunk that would pass the
/// limit ([`WebhookError::PayloadTooLarge`]); a transport error is
/// [`WebhookError::BodyRead`]. Trailers are ignored.
///
/// ```
/// use agentsync_webhooks_core::Receiver;
/// use agentsync_webhooks_tower::collect_body;
/// # use agentsync_webhooks_core::Verifier;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let receiver = Receiver::new(Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?).with_body_limit(4);
/// let body = http_body_util::Full::new(bytes::Bytes::from_static(b"hello"));
/// let error = collect_body(receiver.collector(None)?, body).await.unwrap_err();
/// assert_eq!(error.status(), 413);
/// # Ok(())
/// # }
/// ```
pub async fn collect_body<B>(mut collector: BodyCollector, body: B) -> Result<Bytes, WebhookError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| WebhookError::BodyRead(e.into().to_string()))?;
        if let Ok(data) = frame.into_data() {
            collector.push_buf(data)?;
        }
    }
    Ok(collector.finish())
}

pin_project! {
    /// The response body of [`WebhookService`](crate::WebhookService): the inner service's body,
    /// or the layer's own JSON rejection.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Rejection { #[pin] body: Full<Bytes> },
        Inner { #[pin] body: B },
    }
}

impl<B> ResponseBody<B> {
    /// The layer's own answer (a rejection).
    pub fn rejection(body: Full<Bytes>) -> Self {
        Self {
            kind: Kind::Rejection { body },
        }
    }

    /// The inner service's body, passed through.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Rejection { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            KindProj::Inner { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Rejection { body } => body.is_end_stream(),
            Kind::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Rejection { body } => body.size_hint(),
            Kind::Inner { body } => body.size_hint(),
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            Kind::Rejection { .. } => "ResponseBody::Rejection",
            Kind::Inner { .. } => "ResponseBody::Inner",
        })
    }
}

#[cfg(test)]
mod tests {
    use agentsync_webhooks_core::Receiver;

    use super::*;

    fn receiver(limit: usize) -> Receiver {
        let verifier =
            agentsync_webhooks_core::Verifier::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap();
        Receiver::new(verifier).with_body_limit(limit)
    }

    #[tokio::test]
    async fn collects_within_the_limit() {
        let body = Full::new(Bytes::from_static(b"abcd"));
        let bytes = collect_body(receiver(4).collector(None).unwrap(), body)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"abcd");
    }

    #[test]
    fn declared_length_from_header_or_hint() {
        let body = Full::new(Bytes::from_static(b"abc"));
        let mut headers = HeaderMap::new();
        assert_eq!(content_length(&headers, &body), Some(3));
        headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("10"),
        );
        assert_eq!(content_length(&headers, &body), Some(10));
    }
}
