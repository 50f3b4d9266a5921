//! Progress bars on large transfers, on a terminal only.

use std::io::{IsTerminal, Read};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use rr_core::ByteStream;

/// Transfers at least this large get a progress bar.
pub const PROGRESS_THRESHOLD: u64 = 4 * 1024 * 1024;

/// Whether to draw progress bars: not with `--json`, and only when stdout is
/// a terminal (a script reading stdout wants no bars).
pub fn wanted(json: bool) -> bool {
    !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// A bar for `total` bytes if `enabled` and the transfer is large enough.
pub fn bar(enabled: bool, total: u64, message: &'static str) -> Option<ProgressBar> {
    if !enabled || total < PROGRESS_THRESHOLD {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(message);
    Some(bar)
}

/// `stream`, advancing `bar` by each chunk it yields.
pub fn track(stream: ByteStream, bar: Option<ProgressBar>) -> ByteStream {
    match bar {
        None => stream,
        Some(bar) => Box::pin(stream.inspect(move |item| {
            if let Ok(bytes) = item {
                bar.inc(bytes.len() as u64);
            }
        })),
    }
}

/// `reader`, advancing `bar` by what each read returns.
pub fn track_read<R: Read>(reader: R, bar: ProgressBar) -> TrackedRead<R> {
    TrackedRead { reader, bar }
}

/// See [`track_read`].
pub struct TrackedRead<R> {
    reader: R,
    bar: ProgressBar,
}

impl<R: Read> Read for TrackedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_transfers_and_json_get_no_bar() {
        assert!(bar(true, PROGRESS_THRESHOLD - 1, "x").is_none());
        assert!(bar(false, PROGRESS_THRESHOLD * 10, "x").is_none());
        assert!(!wanted(true));
        let b = bar(true, PROGRESS_THRESHOLD, "x").expect("a bar");
        assert_eq!(b.length(), Some(PROGRESS_THRESHOLD));
    }

    #[tokio::test]
    async fn tracking_counts_every_byte() {
        let b = ProgressBar::hidden();
        b.set_length(10);
        let stream = track(rr_core::byte_stream_of(vec![0u8; 10]), Some(b.clone()));
        let out = rr_node::collect(stream).await.unwrap();
        assert_eq!(out.len(), 10);
        assert_eq!(b.position(), 10);
    }

    #[test]
    fn tracking_a_reader_counts_every_byte() {
        let b = ProgressBar::hidden();
        b.set_length(10);
        let mut out = Vec::new();
        track_read(&[7u8; 10][..], b.clone())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, [7; 10]);
        assert_eq!(b.position(), 10);
    }
}
