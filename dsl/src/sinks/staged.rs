//! Queue messages staged in checkpoints: what the writers of the queue
//! sinks (Kafka, AMQP) write with checkpoints, and what their publishers
//! read back once the checkpoint is committed.
//!
//! Each message is a frame: the key's length as a little-endian `u32`
//! (`u32::MAX`: no key), the key, the value's length, the value. The
//! checkpoint store checks each file's length and CRC, so a frame that does
//! not parse means a bug or a file changed behind the store's back; it is
//! an error, never a panic.

use std::sync::Arc;

use weir_engine::BoxError;
use weir_operators::Time;

use super::files::FileOut;
use super::{ByRef, SinkContext, SinkWriter, WriteRefs};
use crate::error::SinkError;

/// Encodes one record as a message: the key (if `Some`, appended to the
/// first buffer) and the value (appended to the second).
pub(crate) type Frame<T> =
    Arc<dyn Fn(&T, &mut Vec<u8>, &mut Vec<u8>) -> Result<bool, String> + Send + Sync>;

/// One worker's writer of a queue sink in a job with checkpoints: each
/// record becomes a frame in the sink's file in progress, staged into each
/// checkpoint as it is taken.
pub(crate) struct StagedMessages<T> {
    out: FileOut,
    frame: Frame<T>,
    /// Names the sink's destination in errors (`topic `x``).
    what: String,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl<T: 'static> StagedMessages<T> {
    /// The writer of the sink `ctx` opens with checkpoints, framing each
    /// record with `frame`; `what` names its destination in errors.
    ///
    /// # Errors
    ///
    /// The sink was not opened for checkpoints, or its file in progress
    /// cannot be created.
    pub(crate) fn open(
        ctx: &SinkContext,
        frame: Frame<T>,
        what: String,
    ) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        let Some(staging) = ctx.staging() else {
            return Err(SinkError {
                sink: ctx.name().to_string(),
                path: what.into(),
                error: std::io::Error::other("this sink was not opened for checkpoints"),
            });
        };
        let out = FileOut::create(ctx, staging.in_progress())?;
        Ok(Box::new(ByRef(StagedMessages {
            out,
            frame,
            what,
            key: Vec::new(),
            value: Vec::new(),
        })))
    }
}

impl<T: 'static> WriteRefs<T> for StagedMessages<T> {
    fn write_refs<'a>(&mut self, records: impl Iterator<Item = &'a T>) -> Result<(), BoxError>
    where
        T: 'a,
    {
        for record in records {
            self.key.clear();
            self.value.clear();
            let keyed = (self.frame)(record, &mut self.key, &mut self.value)
                .map_err(|e| format!("{}: {e}", self.what))?;
            let buf = self.out.buffer();
            match keyed {
                true => push_part(buf, &self.key, &self.what)?,
                false => buf.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
            push_part(buf, &self.value, &self.what)?;
        }
        self.out.ship()
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.out.finish()
    }

    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), BoxError> {
        self.out.checkpoint(at)
    }
}

fn push_part(buf: &mut Vec<u8>, part: &[u8], what: &str) -> Result<(), BoxError> {
    let len = u32::try_from(part.len())
        .ok()
        .filter(|&len| len != u32::MAX)
        .ok_or_else(|| format!("{what}: a message of {} bytes is too large", part.len()))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(part);
    Ok(())
}

/// The messages (key, value) of one staged file, in the order written.
pub(crate) fn messages(bytes: &[u8]) -> Messages<'_> {
    Messages { rest: bytes }
}

/// See [`messages`].
pub(crate) struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            self.rest = &[];
            return Err("a staged message is cut short".to_string());
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn len(&mut self) -> Result<u32, String> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn message(&mut self) -> Result<(Option<&'a [u8]>, &'a [u8]), String> {
        let key = match self.len()? {
            u32::MAX => None,
            n => Some(self.take(n as usize)?),
        };
        let n = self.len()?;
        Ok((key, self.take(n as usize)?))
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<(Option<&'a [u8]>, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        (!self.rest.is_empty()).then(|| self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(messages: &[(Option<&[u8]>, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (key, value) in messages {
            match key {
                Some(key) => push_part(&mut buf, key, "t").unwrap(),
                None => buf.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
            push_part(&mut buf, value, "t").unwrap();
        }
        buf
    }

    #[test]
    fn staged_messages_read_back_as_written() {
        let written: Vec<(Option<&[u8]>, &[u8])> =
            vec![(Some(b"k1"), b"v1"), (None, b""), (Some(b""), b"{\"a\":1}")];
        let bytes = frames(&written);
        let read: Vec<_> = messages(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, written);
        assert_eq!(messages(&[]).count(), 0);
    }

    #[test]
    fn a_cut_file_is_an_error_not_a_panic() {
        let bytes = frames(&[(Some(b"key"), b"value")]);
        for cut in 1..bytes.len() {
            let read: Result<Vec<_>, _> = messages(&bytes[..cut]).collect();
            assert!(read.is_err(), "cut at {cut}");
        }
    }
}
