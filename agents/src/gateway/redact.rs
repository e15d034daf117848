//! Removes the upstream key from bytes going back to a role, including a key split across stream
//! chunks: only a tail that could be the start of the key is held back, so SSE events (ending in
//! a blank line, which no key starts with) are never delayed.

use memchr::memmem;

const MASK: &[u8] = b"[REDACTED]";

/// Streaming redactor for one response.
#[derive(Debug)]
pub struct Redactor<'k> {
    key: &'k [u8],
    carry: Vec<u8>,
}

impl<'k> Redactor<'k> {
    /// A redactor for `key` (an empty key redacts nothing).
    pub fn new(key: &'k [u8]) -> Self {
        Self {
            key,
            carry: Vec::new(),
        }
    }

    /// The bytes of `chunk` that can be released now, with every whole key masked.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.key.is_empty() {
            return chunk.to_vec();
        }
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(data.len());
        let mut pos = 0;
        while let Some(i) = memmem::find(&data[pos..], self.key) {
            out.extend_from_slice(&data[pos..pos + i]);
            out.extend_from_slice(MASK);
            pos += i + self.key.len();
        }
        let tail = &data[pos..];
        let longest = (self.key.len() - 1).min(tail.len());
        let hold = (1..=longest)
            .rev()
            .find(|&l| self.key.starts_with(&tail[tail.len() - l..]))
            .unwrap_or(0);
        out.extend_from_slice(&tail[..tail.len() - hold]);
        self.carry = tail[tail.len() - hold..].to_vec();
        out
    }

    /// What is still held at the end of the stream (a key prefix that never completed).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.carry)
    }
}

/// Mask every occurrence of `key` in a whole body.
pub fn redact_all(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut r = Redactor::new(key);
    let mut out = r.feed(data);
    out.extend(r.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_split_keys_are_masked_and_other_bytes_kept() {
        let key = b"sk-SECRET-123";
        assert_eq!(
            redact_all(key, b"a sk-SECRET-123 b sk-SECRET-123"),
            b"a [REDACTED] b [REDACTED]"
        );
        let text = b"data: {\"x\":\"sk-SECRET-123\"}\n\ndata: sk-SEC\n\n";
        for split in 0..text.len() {
            let mut r = Redactor::new(key);
            let mut out = r.feed(&text[..split]);
            out.extend(r.feed(&text[split..]));
            out.extend(r.finish());
            assert_eq!(
                out, b"data: {\"x\":\"[REDACTED]\"}\n\ndata: sk-SEC\n\n",
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_event_end_is_released_at_once() {
        let mut r = Redactor::new(b"sk-abc");
        assert_eq!(r.feed(b"data: 1\n\n"), b"data: 1\n\n");
        assert_eq!(r.feed(b"data: s"), b"data: ");
        assert_eq!(r.feed(b"x\n\n"), b"sx\n\n");
        assert_eq!(Redactor::new(b"").feed(b"abc"), b"abc");
    }
}
