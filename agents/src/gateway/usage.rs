//! Real token usage read back from a response: the JSON `usage` object of a whole response, or the
//! usage carried by server-sent events (`response.completed` for Responses, the final chunk for
//! Chat Completions, `message_start` + `message_delta` for Anthropic Messages).

use serde_json::Value;

use super::estimate::Api;

/// Tokens a response reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// Field-wise maximum: streamed usage is cumulative, so the largest value seen is the total.
    fn merge(self, o: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.max(o.input_tokens),
            output_tokens: self.output_tokens.max(o.output_tokens),
        }
    }
}

/// Usage in a `usage` object of either naming convention.
fn usage_object(u: &Value) -> Option<Usage> {
    let get = |k: &str| u.get(k).and_then(Value::as_u64);
    let input = get("input_tokens").or_else(|| get("prompt_tokens"));
    let output = get("output_tokens").or_else(|| get("completion_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
    })
}

/// Usage of a whole (non-streamed) JSON response.
pub fn from_json(v: &Value) -> Option<Usage> {
    v.get("usage").and_then(usage_object)
}

/// Usage carried by one SSE `data:` payload of `api`.
fn from_event(api: Api, v: &Value) -> Option<Usage> {
    match api {
        Api::Responses => v.get("response").and_then(from_json),
        Api::ChatCompletions => from_json(v),
        Api::AnthropicMessages => v
            .get("message")
            .and_then(from_json)
            .or_else(|| from_json(v)),
    }
}

/// Watches a server-sent-event stream as it passes and keeps the usage it reports. Bytes are
/// not altered; events are split on blank lines and may straddle chunks.
#[derive(Debug)]
pub struct SseTap {
    api: Api,
    pending: Vec<u8>,
    usage: Option<Usage>,
}

/// An SSE event longer than this is not buffered for usage (it is still passed through).
const MAX_EVENT: usize = 4 << 20;

impl SseTap {
    /// A tap for a stream of `api`.
    pub fn new(api: Api) -> Self {
        Self {
            api,
            pending: Vec::new(),
            usage: None,
        }
    }

    /// Feed the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
        while let Some(end) = find_event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end.1).take(end.0).collect();
            self.event(&event);
        }
        if self.pending.len() > MAX_EVENT {
            self.pending.clear();
        }
    }

    fn event(&mut self, event: &[u8]) {
        let text = String::from_utf8_lossy(event);
        let data: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect::<Vec<_>>()
            .join("\n");
        if data.is_empty() || data == "[DONE]" {
            return;
        }
        if let Ok(v) = serde_json::from_str::<Value>(&data) {
            if let Some(u) = from_event(self.api, &v) {
                self.usage = Some(self.usage.map_or(u, |prev| prev.merge(u)));
            }
        }
    }

    /// Usage seen so far (after the stream ends: the response's usage, if it reported one).
    pub fn usage(&mut self) -> Option<Usage> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.event(&rest);
        }
        self.usage
    }
}

/// (length of the event, length including its terminating blank line) of the first complete event.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| (i, i + 2));
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
