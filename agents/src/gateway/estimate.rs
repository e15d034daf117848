//! Estimate a request's cost before it is sent: input tokens from the request text plus the
//! request's output cap, priced from the table.
//!
//! Input tokens are counted over every string in the request (messages, instructions, tool
//! schemas): with the model family's own BPE tokenizer where one is published (OpenAI's
//! o200k_base / cl100k_base … through `tiktoken-rs`, picked by model name), else as a labelled
//! character-based estimate (`chars/4`, rounded up; e.g. Anthropic, which publishes no tokenizer).
//! Counting every string (role names, the model name, schema text) and not the chat format's few
//! tokens per message errs either way by a few tokens; booking the real usage afterwards bounds it,
//! and the output cap, which usually dominates the estimate, is exact because the gateway injects
//! it when it is missing. [`Estimate::input_method`] says which count was used.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::ModelPrice;

/// How input tokens are counted when the model has no published tokenizer; carried in events and
/// errors so nobody mistakes it for a count.
pub const INPUT_METHOD: &str = "chars/4 estimate";

/// The tokenizer for `model`'s family, with its label, if one is published.
fn tokenizer(model: &str) -> Option<(&'static tiktoken_rs::CoreBPE, &'static str)> {
    use tiktoken_rs::tokenizer::{get_tokenizer, Tokenizer};
    let t = get_tokenizer(model)?;
    let label = match t {
        Tokenizer::O200kHarmony => "o200k_harmony tokenizer",
        Tokenizer::O200kBase => "o200k_base tokenizer",
        Tokenizer::Cl100kBase => "cl100k_base tokenizer",
        Tokenizer::P50kBase | Tokenizer::P50kEdit => "p50k_base tokenizer",
        Tokenizer::R50kBase | Tokenizer::Gpt2 => "r50k_base tokenizer",
    };
    tiktoken_rs::bpe_for_tokenizer(t)
        .ok()
        .map(|bpe| (bpe, label))
}

/// Loads `model`'s tokenizer now (parsing its ranks takes a few hundred ms), so that the first
/// request does not wait for it.
pub fn warm(model: &str) {
    let _ = tokenizer(model);
}

/// Input tokens of `body` for `model`, and how they were counted.
fn count_input(model: &str, body: &Value) -> (u64, &'static str) {
    match tokenizer(model) {
        Some((bpe, label)) => {
            let mut n = 0u64;
            for_each_string(body, &mut |s| n += bpe.encode_ordinary(s).len() as u64);
            (n, label)
        }
        None => {
            let mut chars = 0u64;
            for_each_string(body, &mut |s| chars += s.chars().count() as u64);
            (chars.div_ceil(4), INPUT_METHOD)
        }
    }
}

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
    /// Input tokens, counted as [`Estimate::input_method`] says.
    pub input_tokens: u64,
    /// `o200k_base tokenizer` and the like, or [`INPUT_METHOD`] (a character-based estimate).
    pub input_method: &'static str,
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
    let (input_tokens, input_method) = count_input(&model, body);
    Ok(Estimate {
        usd: price_usd(price, input_tokens, max_output_tokens),
        model,
        input_tokens,
        input_method,
        max_output_tokens,
        cap_injected,
    })
}

/// Cost of `input` and `output` tokens at `price`.
pub fn price_usd(price: &ModelPrice, input: u64, output: u64) -> f64 {
    (input as f64) * price.input_usd_per_mtok / 1e6
        + (output as f64) * price.output_usd_per_mtok / 1e6
}

/// Calls `f` on every string value (not keys, not numbers) of `v`.
fn for_each_string(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| for_each_string(x, f)),
        Value::Object(o) => o.values().for_each(|x| for_each_string(x, f)),
        _ => {}
    }
}

#[cfg(test)]
#[path = "estimate_tests.rs"]
mod tests;
