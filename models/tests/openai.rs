//! The OpenAI-compatible provider against a scripted server speaking its wire format.

mod fixture;

use std::time::Duration;

use agentos_models::{
    ApiKey, ChatEvent, ChatRequest, FinishReason, Http, Limits, Message, ModelError, OpenAi,
    RetryPolicy, TimeoutStage, ToolSpec, Usage,
};
use fixture::{within, Fixture, Reply};
use futures_util::StreamExt;
use serde_json::json;

fn quick() -> Limits {
    Limits {
        connect: Duration::from_secs(2),
        first_token: Duration::from_secs(5),
        idle: Duration::from_secs(5),
        retry: RetryPolicy {
            retries: 2,
            base: Duration::from_millis(10),
            cap: Duration::from_secs(3),
        },
    }
}

fn provider(f: &Fixture, limits: Limits) -> OpenAi {
    OpenAi::new(
        Http::new(limits).unwrap(),
        format!("{}/v1", f.base),
        Some(ApiKey::new("sk-test-key")),
    )
}

fn request() -> ChatRequest {
    let mut r = ChatRequest::new(
        "qwen",
        vec![Message::system("be brief"), Message::user("hello there")],
    );
    r.temperature = Some(0.0);
    r.max_tokens = Some(64);
    r
}

async fn collect(p: &OpenAi, r: &ChatRequest) -> Result<Vec<ChatEvent>, ModelError> {
    let mut s = p.chat(r, None).await?;
    let mut out = Vec::new();
    while let Some(ev) = s.next().await {
        out.push(ev?);
    }
    Ok(out)
}

fn text_of(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn text_streams_and_usage_comes_from_the_last_chunk() {
    within(async {
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo!"},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
            "[DONE]",
        ])])
        .await;
        let events = collect(&provider(&f, quick()), &request()).await.unwrap();
        assert_eq!(text_of(&events), "Hello!");
        assert_eq!(
            &events[events.len() - 2..],
            &[
                ChatEvent::Usage(Usage {
                    input_tokens: 12,
                    output_tokens: 3,
                    estimated: false
                }),
                ChatEvent::Done {
                    finish: FinishReason::Stop
                }
            ]
        );
        let req = &f.received()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v1/chat/completions");
        assert_eq!(req.header("authorization"), Some("Bearer sk-test-key"));
        assert_eq!(req.body["stream"], json!(true));
        assert_eq!(req.body["stream_options"]["include_usage"], json!(true));
        assert_eq!(req.body["messages"][0]["role"], "system");
        assert_eq!(req.body["max_tokens"], 64);
    })
    .await;
}

#[tokio::test]
async fn without_usage_from_the_server_tokens_are_counted() {
    within(async {
        // llama.cpp-like: close-delimited body, no usage chunk.
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"choices":[{"index":0,"delta":{"content":"abcdefgh"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
            "[DONE]",
        ])
        .close_delimited()])
        .await;
        let events = collect(&provider(&f, quick()), &request()).await.unwrap();
        let usage = events.iter().find_map(|e| match e {
            ChatEvent::Usage(u) => Some(*u),
            _ => None,
        });
        // "be brief" (2) + "hello there" (3) in, "abcdefgh" (2) out.
        assert_eq!(
            usage,
            Some(Usage {
                input_tokens: 5,
                output_tokens: 2,
                estimated: true
            })
        );
        assert_eq!(
            events.last(),
            Some(&ChatEvent::Done {
                finish: FinishReason::Length
            })
        );
    })
    .await;
}

#[tokio::test]
async fn tool_call_fragments_are_assembled_by_index() {
    within(async {
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"files.read","arguments":""}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"web.fetch","arguments":"{\"url\":"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"a.txt\"}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\"http://x\"}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":20}}"#,
            "[DONE]",
        ])])
        .await;
        let mut r = request();
        r.tools = vec![ToolSpec {
            name: "files.read".into(),
            description: "Read a file".into(),
            parameters: json!({"type":"object","properties":{"path":{"type":"string"}}}),
        }];
        let events = collect(&provider(&f, quick()), &r).await.unwrap();
        assert_eq!(
            events[0],
            ChatEvent::ToolCallStarted {
                index: 0,
                id: "call_a".into(),
                name: "files.read".into()
            }
        );
        let finished: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::ToolCallFinished { index, call } => Some((*index, call.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(finished.len(), 2);
        assert_eq!(finished[0].1.id, "call_a");
        assert_eq!(finished[0].1.arguments, json!({"path": "a.txt"}));
        assert_eq!(finished[1].0, 1);
        assert_eq!(finished[1].1.arguments, json!({"url": "http://x"}));
        assert_eq!(
            events.last(),
            Some(&ChatEvent::Done {
                finish: FinishReason::ToolCalls
            })
        );
        let body = &f.received()[0].body;
        assert_eq!(body["tools"][0]["function"]["name"], "files.read");

        // The calls and their results go back in the next turn.
        let call = finished[0].1.clone();
        let next = ChatRequest::new(
            "qwen",
            vec![
                Message::user("read a.txt"),
                Message::assistant("", vec![call.clone()]),
                Message::tool_result(&call, "contents"),
            ],
        );
        let body = agentos_models::openai::body_for_test(&next);
        assert_eq!(body["messages"][1]["tool_calls"][0]["id"], "call_a");
        assert_eq!(
            body["messages"][1]["tool_calls"][0]["function"]["arguments"],
            r#"{"path":"a.txt"}"#
        );
        assert_eq!(body["messages"][2]["tool_call_id"], "call_a");
    })
    .await;
}

#[tokio::test]
async fn error_replies_get_their_names() {
    within(async {
        let cases = vec![
            (
                Reply::error(
                    401,
                    r#"{"error":{"message":"Incorrect API key provided: sk-test-key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
                ),
                ModelError::WrongKey { status: 401 },
            ),
            (
                Reply::error(
                    404,
                    r#"{"error":{"message":"The model `qwen` does not exist","code":"model_not_found"}}"#,
                ),
                ModelError::UnknownModel {
                    model: "qwen".into(),
                },
            ),
            (
                Reply::error(
                    400,
                    r#"{"error":"registry.ollama.ai/library/qwen:latest does not support tools"}"#,
                ),
                ModelError::ToolsNotSupported {
                    model: "qwen".into(),
                },
            ),
        ];
        for (reply, expected) in cases {
            let f = Fixture::start(vec![reply]).await;
            let err = collect(&provider(&f, quick()), &request())
                .await
                .unwrap_err();
            assert_eq!(err, expected);
            assert!(!err.to_string().contains("sk-test-key"));
        }
        let f = Fixture::start(vec![Reply::error(
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#,
        )])
        .await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::ContextOverflow { .. }), "{err:?}");

        // An error inside the stream (llama.cpp, vLLM).
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#,
        ])])
        .await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::ContextOverflow { .. }), "{err:?}");

        let f = Fixture::start(vec![Reply::error(500, "upstream crashed, key sk-test-key")])
            .await;
        let limits = Limits {
            retry: RetryPolicy {
                retries: 0,
                ..quick().retry
            },
            ..quick()
        };
        let err = collect(&provider(&f, limits), &request())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ModelError::Server {
                status: 500,
                excerpt: "upstream crashed, key <key>".into()
            }
        );
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    within(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let p = OpenAi::new(
            Http::new(quick()).unwrap(),
            format!("http://{addr}/v1"),
            None,
        );
        let err = collect(&p, &request()).await.unwrap_err();
        assert_eq!(
            err,
            ModelError::Unreachable {
                address: format!("http://{addr}"),
                reason: "the connection was refused or failed".into()
            }
        );
    })
    .await;
}

#[tokio::test]
async fn an_address_that_is_not_a_url_is_named_so() {
    within(async {
        let p = OpenAi::new(Http::new(quick()).unwrap(), "http://[::1/v1", None);
        match collect(&p, &request()).await.unwrap_err() {
            ModelError::Unreachable { address, reason } => {
                assert_eq!(address, "an invalid address");
                assert!(reason.contains("not a valid URL"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_then_retried() {
    within(async {
        let f = Fixture::start(vec![
            Reply::error(429, r#"{"error":{"message":"Rate limit reached"}}"#)
                .header("retry-after", "1"),
            Reply::error(503, "overloaded"),
            Reply::data(&[
                r#"{"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}"#,
                "[DONE]",
            ]),
        ])
        .await;
        let started = std::time::Instant::now();
        let events = collect(&provider(&f, quick()), &request()).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(text_of(&events), "ok");
        assert_eq!(f.received().len(), 3);

        // Asked to wait longer than the cap: named at once, with the wait.
        let f = Fixture::start(vec![
            Reply::error(429, "slow down").header("retry-after", "120")
        ])
        .await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ModelError::RateLimited {
                retry_after: Some(Duration::from_secs(120))
            }
        );
        assert_eq!(f.received().len(), 1);

        // Each wait within the cap (3 s), but not all of them together: waited once, then named.
        let busy = || Reply::error(429, "slow down").header("retry-after", "2");
        let f = Fixture::start(vec![busy(), busy(), busy()]).await;
        let started = std::time::Instant::now();
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ModelError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(f.received().len(), 2);
        assert!(started.elapsed() < Duration::from_secs(4));
    })
    .await;
}

#[tokio::test]
async fn a_slow_stream_hits_the_time_limits() {
    within(async {
        let limits = Limits {
            first_token: Duration::from_millis(400),
            idle: Duration::from_millis(300),
            ..quick()
        };
        // Nothing for longer than the first-token limit.
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"choices":[{"index":0,"delta":{"content":"late"},"finish_reason":null}]}"#,
        ])
        .delay_each(Duration::from_secs(3))])
        .await;
        let err = collect(&provider(&f, limits), &request())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ModelError::Timeout {
                stage: TimeoutStage::FirstToken,
                limit: Duration::from_millis(400)
            }
        );
        // A first token, then a stall.
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"choices":[{"index":0,"delta":{"content":"early"},"finish_reason":null}]}"#,
        ])
        .hold(Duration::from_secs(3))])
        .await;
        let mut s = provider(&f, limits).chat(&request(), None).await.unwrap();
        assert_eq!(
            s.next().await,
            Some(Ok(ChatEvent::TextDelta("early".into())))
        );
        assert_eq!(
            s.next().await,
            Some(Err(ModelError::Timeout {
                stage: TimeoutStage::Idle,
                limit: Duration::from_millis(300)
            }))
        );
        assert_eq!(s.next().await, None);
    })
    .await;
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    within(async {
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"choices":[{"index":0,"delta":{"content":"one"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"two"},"finish_reason":null}]}"#,
        ])
        .delay_each(Duration::from_millis(50))
        .hold(Duration::from_secs(15))])
        .await;
        let mut s = provider(&f, quick()).chat(&request(), None).await.unwrap();
        assert_eq!(s.next().await, Some(Ok(ChatEvent::TextDelta("one".into()))));
        drop(s);
        // The fixture sees the client go long before its 15 s hold ends.
        tokio::time::timeout(Duration::from_secs(3), f.closed_early())
            .await
            .expect("the connection stayed open after the stream was dropped");
    })
    .await;
}

#[tokio::test]
async fn a_stream_cut_short_is_a_protocol_error() {
    within(async {
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}"#,
        ])])
        .await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::Protocol { .. }), "{err:?}");
        let f = Fixture::start(vec![Reply::data(&["{not json"])]).await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::Protocol { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn a_reply_that_begins_with_a_byte_order_mark_is_read() {
    within(async {
        let f = Fixture::start(vec![Reply::sse(&[
            "\u{FEFF}data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        ])])
        .await;
        let events = collect(&provider(&f, quick()), &request()).await.unwrap();
        assert_eq!(text_of(&events), "ok");
    })
    .await;
}

#[tokio::test]
async fn a_line_without_end_is_stopped_and_named() {
    within(async {
        let endless = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}",
            "w".repeat(64 * 1024)
        );
        let parts: Vec<&str> = std::iter::repeat_n(endless.as_str(), 40).collect();
        let f = Fixture::start(vec![Reply::sse(&parts)]).await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the model server sent a reply that cannot be read: a line of the reply is longer \
             than 1 MiB"
        );
    })
    .await;
}

#[tokio::test]
async fn a_redirect_is_not_followed_with_the_key() {
    within(async {
        let elsewhere = Fixture::start(vec![Reply::data(&["[DONE]"])]).await;
        let f = Fixture::start(vec![Reply::json(307, "{}").header(
            "location",
            &format!("{}/v1/chat/completions", elsewhere.base),
        )])
        .await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        let port = elsewhere.base.rsplit(':').next().unwrap();
        assert!(
            matches!(&err, ModelError::Unreachable { reason, .. }
                if reason.contains("redirects the request (HTTP 307) to http://127.0.0.1:")
                    && reason.contains(port)),
            "{err}"
        );
        assert!(
            elsewhere.received().is_empty(),
            "nothing went to the other server"
        );
        assert_eq!(f.received().len(), 1, "asked once, not again");
    })
    .await;
}

#[tokio::test]
async fn a_reply_of_endless_tool_calls_is_stopped_at_the_limit() {
    within(async {
        // 15 000 calls in one event (under the line limit), each at an index of its own: read in
        // linear time and refused past the limit, not kept.
        let calls: Vec<String> = (0..15_000)
            .map(|i| format!(r#"{{"index":{i},"function":{{"name":"f","arguments":"{{}}"}}}}"#))
            .collect();
        let event = format!(
            r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{}]}},"finish_reason":null}}]}}"#,
            calls.join(",")
        );
        let f = Fixture::start(vec![Reply::data(&[&event, "[DONE]"])]).await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the model server sent a reply that cannot be read: the reply makes more than 128 \
             tool calls"
        );
    })
    .await;
}

#[tokio::test]
async fn a_cancel_signal_ends_the_reply_and_closes_the_connection() {
    within(async {
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"choices":[{"index":0,"delta":{"content":"one"},"finish_reason":null}]}"#,
        ])
        .hold(Duration::from_secs(15))])
        .await;
        let (cancel, canceled) = tokio::sync::oneshot::channel::<()>();
        let reply = provider(&f, quick()).chat(&request(), None).await.unwrap();
        let mut s = agentos_models::cancel::until(reply, async move {
            let _ = canceled.await;
        });
        assert_eq!(s.next().await, Some(Ok(ChatEvent::TextDelta("one".into()))));
        cancel.send(()).unwrap();
        assert_eq!(s.next().await, Some(Err(ModelError::Canceled)));
        assert_eq!(s.next().await, None);
        tokio::time::timeout(Duration::from_secs(3), f.closed_early())
            .await
            .expect("the connection stayed open after the cancel");
    })
    .await;
}

#[tokio::test]
async fn a_named_fault_is_not_retried() {
    within(async {
        // llama-server started without --jinja answers tools with a 500.
        let f = Fixture::start(vec![Reply::error(
            500,
            r#"{"error":{"code":500,"message":"tools param requires --jinja flag","type":"server_error"}}"#,
        )])
        .await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ModelError::ToolsNotSupported {
                model: "qwen".into()
            }
        );
        assert_eq!(f.received().len(), 1);
        // A 5xx that stays a 5xx is tried 1 + 2 times, then named.
        let f = Fixture::start(vec![
            Reply::error(502, "bad gateway"),
            Reply::error(502, "bad gateway"),
            Reply::error(502, "bad gateway"),
        ])
        .await;
        let err = collect(&provider(&f, quick()), &request())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ModelError::Server {
                status: 502,
                excerpt: "bad gateway".into()
            }
        );
        assert_eq!(f.received().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn whole_calls_without_an_index_as_ollama_sends_them() {
    within(async {
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"qwen","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_x1","type":"function","function":{"name":"files.read","arguments":"{\"path\":\"a.txt\"}"}},{"id":"call_x2","type":"function","function":{"name":"files.list","arguments":"{}"}}]},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"qwen","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ])])
        .await;
        let events = collect(&provider(&f, quick()), &request()).await.unwrap();
        let calls: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::ToolCallFinished { index, call } => {
                    Some((*index, call.id.clone(), call.arguments.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                (0, "call_x1".to_owned(), json!({"path": "a.txt"})),
                (1, "call_x2".to_owned(), json!({}))
            ]
        );
        assert_eq!(
            events.last(),
            Some(&ChatEvent::Done {
                finish: FinishReason::ToolCalls
            })
        );
    })
    .await;
}

#[tokio::test]
async fn a_request_tells_when_it_goes_on_the_wire_once_and_keeps_its_length() {
    within(async {
        // Told by the time the reply begins (a reply cannot come before its request left), and
        // once: the retry after the 503 sends the same body again without telling.
        let f = Fixture::start(vec![
            Reply::error(503, "overloaded"),
            Reply::data(&[
                r#"{"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}"#,
                "[DONE]",
            ]),
        ])
        .await;
        let (tell, mut told) = tokio::sync::oneshot::channel();
        let mut s = provider(&f, quick())
            .chat(&request(), Some(tell))
            .await
            .unwrap();
        assert_eq!(told.try_recv(), Ok(()));
        let mut events = Vec::new();
        while let Some(ev) = s.next().await {
            events.push(ev.unwrap());
        }
        assert_eq!(text_of(&events), "ok");
        let received = f.received();
        assert_eq!(received.len(), 2);
        for req in &received {
            // Sent whole with its length (not chunked), and the same both times.
            assert_eq!(req.header("transfer-encoding"), None);
            let length: usize = req.header("content-length").unwrap().parse().unwrap();
            assert_eq!(length, serde_json::to_vec(&req.body).unwrap().len());
            assert_eq!(req.body, received[0].body);
            assert_eq!(req.body["messages"][1]["content"], "hello there");
        }
    })
    .await;
}

#[tokio::test]
async fn a_connection_closed_under_a_request_is_asked_again_once() {
    within(async {
        let answer = Reply::data(&[
            r#"{"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]);
        let f = Fixture::start(vec![Reply::hang_up(), answer]).await;
        let mut s = provider(&f, quick()).chat(&request(), None).await.unwrap();
        let mut events = Vec::new();
        while let Some(ev) = s.next().await {
            events.push(ev.unwrap());
        }
        assert_eq!(text_of(&events), "ok");
        assert_eq!(f.received().len(), 2);

        // Twice in a row: the server is named as unreachable, after one more try only.
        let f = Fixture::start(vec![Reply::hang_up(), Reply::hang_up(), Reply::hang_up()]).await;
        match provider(&f, quick()).chat(&request(), None).await {
            Err(ModelError::Unreachable { reason, .. }) => {
                assert!(reason.contains("could not be sent"), "{reason}")
            }
            other => panic!("expected Unreachable, got {:?}", other.map(|_| ())),
        }
        assert_eq!(f.received().len(), 2);
    })
    .await;
}
