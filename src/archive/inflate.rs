//! The two-thread inflate pipeline of the unpacker: one thread reads the
//! compressed stream and inflates it into chunks, the other takes the
//! chunks as a plain reader and unpacks the tar from them; used chunks go
//! back to be refilled, so memory stays at a few chunks whatever the size
//! of the archive.

use std::io::{self, BufRead, Read};
use std::sync::mpsc;

/// Inflated bytes per chunk, and chunks in flight between the threads.
pub const CHUNK: usize = 256 * 1024;
pub const CHUNKS: usize = 8;

/// An inflated chunk (all `CHUNK` bytes long, the first `.1` filled), or
/// the error that ended the gzip stream.
pub type Chunk = io::Result<(Vec<u8>, usize)>;

/// The channels between the two threads: the inflating side's ends and
/// the unpacking side's reader.
pub fn channel() -> (mpsc::SyncSender<Chunk>, mpsc::Receiver<Vec<u8>>, Chunks) {
    let (tx, rx) = mpsc::sync_channel(CHUNKS);
    let (back_tx, back_rx) = mpsc::sync_channel(CHUNKS + 2);
    let chunks = Chunks {
        rx,
        back: back_tx,
        cur: Vec::new(),
        pos: 0,
        end: 0,
    };
    (tx, back_rx, chunks)
}

/// The inflating thread: sends the gzip stream of `buffered` inflated,
/// chunk by chunk, up to the end of the gzip stream (CRC-32 and length
/// checked), reusing the chunks that come back. Returns the reader and
/// the number of bytes already buffered after the gzip stream (to be
/// refused); `None` when it stopped early: an inflate error (sent as the
/// last chunk) or nobody left to receive.
pub fn inflate<R: Read>(
    mut buffered: io::BufReader<R>,
    tx: &mpsc::SyncSender<Chunk>,
    back: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<Option<(R, usize)>> {
    {
        let mut gz = flate2::bufread::GzDecoder::new(&mut buffered);
        loop {
            let mut buf = back.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let mut n = 0;
            while n < CHUNK {
                match gz.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return Ok(None);
                    }
                }
            }
            if n > 0 && tx.send(Ok((buf, n))).is_err() {
                return Ok(None);
            }
            if n < CHUNK {
                break;
            }
        }
    }
    let extra = buffered.fill_buf()?.len();
    Ok(Some((buffered.into_inner(), extra)))
}

/// The unpacking side of the channel, as a reader: the inflated stream,
/// ending where the inflating thread ends (after an error it sent, the
/// unpacking has failed already).
pub struct Chunks {
    rx: mpsc::Receiver<Chunk>,
    /// Where used chunks go back to be refilled.
    back: mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    end: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end {
            match self.rx.recv() {
                Ok(Ok((chunk, n))) => {
                    let used = std::mem::replace(&mut self.cur, chunk);
                    if !used.is_empty() {
                        let _ = self.back.try_send(used);
                    }
                    self.pos = 0;
                    self.end = n;
                }
                Ok(Err(e)) => return Err(e),
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = buf.len().min(self.end - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
