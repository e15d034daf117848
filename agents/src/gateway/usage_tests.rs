use serde_json::json;

use super::*;

#[test]
fn whole_responses_of_both_conventions() {
    assert_eq!(
        from_json(&json!({"usage": {"input_tokens": 5, "output_tokens": 7}})),
        Some(Usage {
            input_tokens: 5,
            output_tokens: 7
        })
    );
    assert_eq!(
        from_json(
            &json!({"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})
        ),
        Some(Usage {
            input_tokens: 3,
            output_tokens: 4
        })
    );
    assert_eq!(from_json(&json!({"id": "x"})), None);
}

#[test]
fn responses_stream_usage_comes_from_response_completed_split_across_chunks() {
    let stream = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":",
        "{\"id\":\"r\",\"usage\":{\"input_tokens\":120,\"output_tokens\":30}}}\n\n"
    );
    let mut tap = SseTap::new(Api::Responses);
    for chunk in stream.as_bytes().chunks(7) {
        tap.feed(chunk);
    }
    assert_eq!(
        tap.usage(),
        Some(Usage {
            input_tokens: 120,
            output_tokens: 30
        })
    );
}

#[test]
fn chat_stream_usage_from_the_final_chunk_and_done_is_ignored() {
    let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n\
                  data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\r\n\r\n\
                  data: [DONE]\r\n\r\n";
    let mut tap = SseTap::new(Api::ChatCompletions);
    tap.feed(stream.as_bytes());
    assert_eq!(
        tap.usage(),
        Some(Usage {
            input_tokens: 9,
            output_tokens: 2
        })
    );
}

#[test]
fn anthropic_usage_merges_message_start_and_delta() {
    let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":50,\"output_tokens\":1}}}\n\n\
                  event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":42}}\n\n";
    let mut tap = SseTap::new(Api::AnthropicMessages);
    tap.feed(stream.as_bytes());
    assert_eq!(
        tap.usage(),
        Some(Usage {
            input_tokens: 50,
            output_tokens: 42
        })
    );
}

#[test]
fn a_stream_without_usage_reports_none() {
    let mut tap = SseTap::new(Api::Responses);
    tap.feed(b"data: {\"type\":\"response.created\"}\n\n");
    assert_eq!(tap.usage(), None);
}
