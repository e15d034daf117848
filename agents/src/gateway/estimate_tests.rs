use serde_json::json;

use super::*;

fn prices() -> BTreeMap<String, ModelPrice> {
    let mut m = BTreeMap::new();
    m.insert(
        "m".to_owned(),
        ModelPrice {
            input_usd_per_mtok: 2.0,
            output_usd_per_mtok: 10.0,
        },
    );
    m
}

#[test]
fn api_is_read_from_the_path_suffix() {
    assert_eq!(Api::from_path("/v1/responses"), Some(Api::Responses));
    assert_eq!(
        Api::from_path("/v1/chat/completions?x=1"),
        Some(Api::ChatCompletions)
    );
    assert_eq!(Api::from_path("/v1/messages"), Some(Api::AnthropicMessages));
    assert_eq!(Api::from_path("/v1/models"), None);
}

#[test]
fn responses_estimate_counts_strings_and_the_given_cap() {
    // "m" (1) + "abcdefgh" (8) = 9 chars -> 3 tokens.
    let mut body = json!({"model": "m", "input": "abcdefgh", "max_output_tokens": 100});
    let e = estimate_and_bound(Api::Responses, &mut body, &prices(), 4096).unwrap();
    assert_eq!(
        e,
        Estimate {
            model: "m".into(),
            input_tokens: 3,
            input_method: INPUT_METHOD,
            max_output_tokens: 100,
            usd: 3.0 * 2.0 / 1e6 + 100.0 * 10.0 / 1e6,
            cap_injected: false,
        }
    );
    assert_eq!(body["max_output_tokens"], 100);
}

#[test]
fn missing_cap_is_injected_so_the_estimate_bounds_the_output() {
    let mut body =
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let e = estimate_and_bound(Api::ChatCompletions, &mut body, &prices(), 500).unwrap();
    assert!(e.cap_injected);
    assert_eq!(body["max_completion_tokens"], 500);
    assert_eq!(body["stream_options"]["include_usage"], true);
    let mut body = json!({"model": "m", "max_tokens": 7, "messages": []});
    let e = estimate_and_bound(Api::AnthropicMessages, &mut body, &prices(), 500).unwrap();
    assert_eq!((e.max_output_tokens, e.cap_injected), (7, false));
}

#[test]
fn unpriced_or_unnamed_models_are_refused() {
    let mut body = json!({"model": "other"});
    assert_eq!(
        estimate_and_bound(Api::Responses, &mut body, &prices(), 1),
        Err(EstimateError::UnpricedModel("other".into()))
    );
    let mut body = json!({"input": "x"});
    assert_eq!(
        estimate_and_bound(Api::Responses, &mut body, &prices(), 1),
        Err(EstimateError::NoModel)
    );
    let mut body = json!([1]);
    assert_eq!(
        estimate_and_bound(Api::Responses, &mut body, &prices(), 1),
        Err(EstimateError::NotAnObject)
    );
}

#[test]
fn an_openai_model_is_counted_with_its_family_tokenizer_and_says_so() {
    let mut p = prices();
    p.insert(
        "gpt-5-codex".to_owned(),
        ModelPrice {
            input_usd_per_mtok: 1.25,
            output_usd_per_mtok: 10.0,
        },
    );
    p.insert(
        "claude-sonnet-4-5".to_owned(),
        ModelPrice {
            input_usd_per_mtok: 3.0,
            output_usd_per_mtok: 15.0,
        },
    );
    // 40 repetitions of one common word: a tokenizer sees ~40 tokens, chars/4 sees 60.
    let text = "hello ".repeat(40);
    let mut body = json!({"model": "gpt-5-codex", "input": text, "max_output_tokens": 10});
    let e = estimate_and_bound(Api::Responses, &mut body, &p, 4096).unwrap();
    assert_eq!(e.input_method, "o200k_base tokenizer");
    let bpe = tiktoken_rs::o200k_base_singleton();
    let want = (bpe.encode_ordinary("gpt-5-codex").len() + bpe.encode_ordinary(&text).len()) as u64;
    assert_eq!(e.input_tokens, want);
    assert!(e.input_tokens < (text.len() as u64).div_ceil(4), "{e:?}");
    // No published tokenizer: the labelled character estimate.
    let mut body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": text}]});
    let e = estimate_and_bound(Api::AnthropicMessages, &mut body, &p, 4096).unwrap();
    assert_eq!(e.input_method, INPUT_METHOD);
    let chars = ("claude-sonnet-4-5".len() + "user".len() + text.len()) as u64;
    assert_eq!(e.input_tokens, chars.div_ceil(4));
}
