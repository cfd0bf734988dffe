//! A TCP stream that acknowledges what it receives at once.
//!
//! OpenSSH's sshd leaves Nagle's algorithm on for sessions without a terminal, so a small
//! message it sends while an earlier one is not yet acknowledged waits for our ACK. Right
//! after authentication it sends its host keys (`hostkeys-00@openssh.com`) and then, on our
//! channel open, the confirmation: with Linux's delayed ACK (up to 40 ms, longer than many
//! a LAN round trip) that confirmation waited for the delay on every connection. Linux's
//! TCP_QUICKACK is not sticky (the stack goes back to delaying ACKs once the connection looks
//! interactive), so it is asked for again after every read and write.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub struct QuickAck(TcpStream);

impl QuickAck {
    pub fn new(stream: TcpStream) -> QuickAck {
        let stream = QuickAck(stream);
        stream.rearm();
        stream
    }

    fn rearm(&self) {
        // Best effort: a stream that cannot have it only answers later.
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.0).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.rearm();
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.0).poll_write(cx, data);
        if let Poll::Ready(Ok(_)) = polled {
            // Sending right after receiving is what makes Linux delay ACKs again.
            this.rearm();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
