//! The Anthropic provider against a scripted server speaking the Messages API's SSE events.

mod fixture;

use std::time::Duration;

use agentos_models::{
    Anthropic, ApiKey, ChatEvent, ChatRequest, FinishReason, Http, Limits, Message, ModelError,
    RetryPolicy, ToolSpec, Usage,
};
use fixture::{within, Fixture, Reply};
use futures_util::StreamExt;
use serde_json::json;

fn provider(f: &Fixture) -> Anthropic {
    let limits = Limits {
        retry: RetryPolicy {
            retries: 2,
            base: Duration::from_millis(10),
            cap: Duration::from_secs(3),
        },
        ..Limits::default()
    };
    Anthropic::new(
        Http::new(limits).unwrap(),
        f.base.clone(),
        ApiKey::new("sk-ant-test"),
    )
}

fn ev(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

async fn collect(p: &Anthropic, r: &ChatRequest) -> Result<Vec<ChatEvent>, ModelError> {
    let mut s = p.chat(r, None).await?;
    let mut out = Vec::new();
    while let Some(e) = s.next().await {
        out.push(e?);
    }
    Ok(out)
}

fn sse(events: &[String]) -> Reply {
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}

#[tokio::test]
async fn text_and_input_json_delta_tool_calls_stream() {
    within(async {
        let f = Fixture::start(vec![sse(&[
            ev("message_start", r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-x","stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#),
            ev("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            ev("ping", r#"{"type":"ping"}"#),
            ev("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}}"#),
            ev("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"look."}}"#),
            ev("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            ev("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"files.read","input":{}}}"#),
            ev("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#),
            ev("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\": \"a"}}"#),
            ev("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":".txt\"}"}}"#),
            ev("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
            ev("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#),
            ev("message_stop", r#"{"type":"message_stop"}"#),
        ])])
        .await;
        let mut r = ChatRequest::new(
            "claude-x",
            vec![Message::system("be brief"), Message::user("read a.txt")],
        );
        r.tools = vec![ToolSpec {
            name: "files.read".into(),
            description: "Read a file".into(),
            parameters: json!({"type":"object","properties":{"path":{"type":"string"}}}),
        }];
        let events = collect(&provider(&f), &r).await.unwrap();
        assert_eq!(events[0], ChatEvent::TextDelta("Let me ".into()));
        assert_eq!(events[1], ChatEvent::TextDelta("look.".into()));
        assert_eq!(
            events[2],
            ChatEvent::ToolCallStarted {
                index: 0,
                id: "toolu_01".into(),
                name: "files.read".into()
            }
        );
        let call = events
            .iter()
            .find_map(|e| match e {
                ChatEvent::ToolCallFinished { call, .. } => Some(call.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(call.arguments, json!({"path": "a.txt"}));
        assert_eq!(
            &events[events.len() - 2..],
            &[
                ChatEvent::Usage(Usage {
                    input_tokens: 25,
                    output_tokens: 42,
                    estimated: false
                }),
                ChatEvent::Done {
                    finish: FinishReason::ToolCalls
                }
            ]
        );
        let req = &f.received()[0];
        assert_eq!(req.path, "/v1/messages");
        assert_eq!(req.header("x-api-key"), Some("sk-ant-test"));
        assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(req.body["system"], "be brief");
        assert_eq!(req.body["messages"][0]["role"], "user");
        assert_eq!(req.body["max_tokens"], 4096);
        assert_eq!(req.body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(req.body["stream"], true);

        // The call and its result go back as tool_use and tool_result blocks.
        let f = Fixture::start(vec![sse(&[
            ev("message_start", r#"{"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":0}}}"#),
            ev("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}"#),
            ev("message_stop", r#"{"type":"message_stop"}"#),
        ])])
        .await;
        let next = ChatRequest::new(
            "claude-x",
            vec![
                Message::user("read a.txt"),
                Message::assistant("", vec![call.clone()]),
                Message::tool_result(&call, "hello"),
            ],
        );
        let events = collect(&provider(&f), &next).await.unwrap();
        assert_eq!(
            events.last(),
            Some(&ChatEvent::Done {
                finish: FinishReason::Stop
            })
        );
        let body = &f.received()[0].body;
        assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(body["messages"][1]["content"][0]["input"]["path"], "a.txt");
        assert_eq!(body["messages"][2]["role"], "user");
        assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "toolu_01");
    })
    .await;
}

#[tokio::test]
async fn errors_over_http_and_in_the_stream_are_named() {
    within(async {
        let f = Fixture::start(vec![Reply::error(
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        )])
        .await;
        let err = collect(&provider(&f), &ChatRequest::new("claude-x", vec![Message::user("hi")]))
            .await
            .unwrap_err();
        assert_eq!(err, ModelError::WrongKey { status: 401 });

        let f = Fixture::start(vec![Reply::error(
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
        )])
        .await;
        let err = collect(&provider(&f), &ChatRequest::new("claude-x", vec![Message::user("hi")]))
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::ContextOverflow { .. }), "{err:?}");

        // Overloaded (529) with a Retry-After, then a reply that fails in its stream.
        let f = Fixture::start(vec![
            Reply::error(529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
                .header("retry-after", "0"),
            sse(&[
                ev("message_start", r#"{"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":0}}}"#),
                ev("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            ]),
        ])
        .await;
        let err = collect(&provider(&f), &ChatRequest::new("claude-x", vec![Message::user("hi")]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ModelError::Server {
                status: 529,
                excerpt: "overloaded_error: Overloaded".into()
            }
        );
        assert_eq!(f.received().len(), 2);
    })
    .await;
}
