//! Estimate a request's cost before it is sent: input tokens from the request text plus the
//! request's output cap, priced from the table.
//!
//! Input tokens are a labelled character-based estimate (`chars/4`, rounded up) over every string
//! in the request (messages, instructions, tool schemas). No tokenizer crate is linked: the
//! estimate error is bounded by booking the real usage afterwards, and the output cap, which
//! usually dominates the estimate, is exact because the gateway injects it when it is missing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::ModelPrice;

/// How input tokens were counted; carried in events and errors so nobody mistakes it for a count.
pub const INPUT_METHOD: &str = "chars/4 estimate";

/// Which wire API a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI Responses (`POST /v1/responses`).
    Responses,
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    ChatCompletions,
    /// Anthropic Messages (`POST /v1/messages`).
    AnthropicMessages,
}

impl Api {
    /// The API a request path addresses, if it is a metered one.
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
        if path.ends_with("/responses") {
            Some(Self::Responses)
        } else if path.ends_with("/chat/completions") {
            Some(Self::ChatCompletions)
        } else if path.ends_with("/messages") {
            Some(Self::AnthropicMessages)
        } else {
            None
        }
    }

    /// The request field that caps output tokens.
    fn cap_field(self) -> &'static str {
        match self {
            Self::Responses => "max_output_tokens",
            Self::ChatCompletions => "max_completion_tokens",
            Self::AnthropicMessages => "max_tokens",
        }
    }
}

/// A priced estimate of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Model named in the request.
    pub model: String,
    /// Estimated input tokens ([`INPUT_METHOD`]).
    pub input_tokens: u64,
    /// The request's output cap (possibly injected).
    pub max_output_tokens: u64,
    /// Estimated cost, USD.
    pub usd: f64,
    /// Whether the gateway had to add the output cap to the request.
    pub cap_injected: bool,
}

/// Why a request could not be estimated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EstimateError {
    /// The body is not a JSON object.
    #[error("request body is not a JSON object")]
    NotAnObject,
    /// No `model` string.
    #[error("request names no model")]
    NoModel,
    /// The model has no price, so its cost cannot be bounded.
    #[error("model `{0}` is not in the gateway's price table")]
    UnpricedModel(String),
}

/// Estimate `body` for `api`, adding the output cap (`default_cap`) when the request has none and,
/// for streamed Chat Completions, asking for the final usage chunk. Returns the estimate; `body` is
/// the request to forward.
pub fn estimate_and_bound(
    api: Api,
    body: &mut Value,
    prices: &BTreeMap<String, ModelPrice>,
    default_cap: u64,
) -> Result<Estimate, EstimateError> {
    let obj = body.as_object_mut().ok_or(EstimateError::NotAnObject)?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or(EstimateError::NoModel)?
        .to_owned();
    let price = prices
        .get(&model)
        .ok_or_else(|| EstimateError::UnpricedModel(model.clone()))?;
    let mut cap = obj.get(api.cap_field()).and_then(Value::as_u64);
    if api == Api::ChatCompletions && cap.is_none() {
        cap = obj.get("max_tokens").and_then(Value::as_u64);
    }
    let cap_injected = cap.is_none();
    let max_output_tokens = cap.unwrap_or(default_cap);
    if cap_injected {
        obj.insert(api.cap_field().to_owned(), Value::from(max_output_tokens));
    }
    if api == Api::ChatCompletions && obj.get("stream").and_then(Value::as_bool) == Some(true) {
        let opts = obj
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(o) = opts.as_object_mut() {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let chars = string_chars(body);
    let input_tokens = chars.div_ceil(4);
    Ok(Estimate {
        usd: price_usd(price, input_tokens, max_output_tokens),
        model,
        input_tokens,
        max_output_tokens,
        cap_injected,
    })
}

/// Cost of `input` and `output` tokens at `price`.
pub fn price_usd(price: &ModelPrice, input: u64, output: u64) -> f64 {
    (input as f64) * price.input_usd_per_mtok / 1e6
        + (output as f64) * price.output_usd_per_mtok / 1e6
}

/// Characters in every string value (not keys, not numbers) of `v`.
fn string_chars(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(a) => a.iter().map(string_chars).sum(),
        Value::Object(o) => o.values().map(string_chars).sum(),
        _ => 0,
    }
}

#[cfg(test)]
#[path = "estimate_tests.rs"]
mod tests;
