//! A response or request body fed frame by frame through a channel, for the http layers'
//! tests: it is pending until a frame is sent, and ends when the sender is dropped.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// The body's end of the channel.
pub struct Fed {
    frames: mpsc::UnboundedReceiver<Bytes>,
    /// What `size_hint` answers.
    pub hint: SizeHint,
}

impl Body for Fed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.frames
            .poll_recv(cx)
            .map(|frame| frame.map(|bytes| Ok(Frame::data(bytes))))
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// A fed body and the sender that feeds it.
pub fn fed() -> (mpsc::UnboundedSender<Bytes>, Fed) {
    let (tx, frames) = mpsc::unbounded_channel();
    (
        tx,
        Fed {
            frames,
            hint: SizeHint::default(),
        },
    )
}
