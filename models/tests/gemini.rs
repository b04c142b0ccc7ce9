//! The Gemini provider against a scripted server speaking `streamGenerateContent?alt=sse`.

mod fixture;

use agentos_models::{
    ApiKey, ChatEvent, ChatRequest, FinishReason, Gemini, Http, Limits, Message, ModelError,
    ToolSpec, Usage,
};
use fixture::{within, Fixture, Reply};
use futures_util::StreamExt;
use serde_json::json;

fn provider(f: &Fixture) -> Gemini {
    Gemini::new(
        Http::new(Limits::default()).unwrap(),
        f.base.clone(),
        ApiKey::new("AIza-test"),
    )
}

async fn collect(p: &Gemini, r: &ChatRequest) -> Result<Vec<ChatEvent>, ModelError> {
    let mut s = p.chat(r, None).await?;
    let mut out = Vec::new();
    while let Some(e) = s.next().await {
        out.push(e?);
    }
    Ok(out)
}

#[tokio::test]
async fn text_then_a_whole_function_call_with_its_signature() {
    within(async {
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"candidates":[{"content":{"parts":[{"text":"thinking...","thought":true}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":0,"totalTokenCount":30}}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"I'll read it."}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":4,"totalTokenCount":34}}"#,
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"files.read","args":{"path":"a.txt"}},"thoughtSignature":"c2lnbmF0dXJl"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":12,"thoughtsTokenCount":5,"totalTokenCount":47}}"#,
        ])
        .close_delimited()])
        .await;
        let mut r = ChatRequest::new(
            "gemini-2.5-flash",
            vec![Message::system("be brief"), Message::user("read a.txt")],
        );
        r.temperature = Some(0.0);
        r.tools = vec![ToolSpec {
            name: "files.read".into(),
            description: "Read a file".into(),
            parameters: json!({"$schema":"https://json-schema.org/draft/2020-12/schema",
                "type":"object","additionalProperties":false,
                "properties":{"path":{"type":"string"}},"required":["path"]}),
        }];
        let events = collect(&provider(&f), &r).await.unwrap();
        assert_eq!(events[0], ChatEvent::TextDelta("I'll read it.".into()));
        assert_eq!(
            events[1],
            ChatEvent::ToolCallStarted {
                index: 0,
                id: "call_0".into(),
                name: "files.read".into()
            }
        );
        let ChatEvent::ToolCallFinished { call, .. } = &events[3] else {
            panic!("{:?}", events[3]);
        };
        assert_eq!(call.arguments, json!({"path": "a.txt"}));
        assert_eq!(call.signature.as_deref(), Some("c2lnbmF0dXJl"));
        assert_eq!(
            &events[4..],
            &[
                ChatEvent::Usage(Usage {
                    input_tokens: 30,
                    output_tokens: 17,
                    estimated: false
                }),
                ChatEvent::Done {
                    finish: FinishReason::ToolCalls
                }
            ]
        );
        let req = &f.received()[0];
        assert_eq!(
            req.path,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(req.header("x-goog-api-key"), Some("AIza-test"));
        assert_eq!(req.body["systemInstruction"]["parts"][0]["text"], "be brief");
        assert_eq!(req.body["contents"][0]["role"], "user");
        assert_eq!(
            req.body["tools"][0]["functionDeclarations"][0]["parameters"],
            json!({"type":"object","properties":{"path":{"type":"string"}},"required":["path"]})
        );
        assert_eq!(req.body["generationConfig"]["temperature"], 0.0);

        // The result goes back beside the call and its signature.
        let call = call.clone();
        let f = Fixture::start(vec![Reply::data(&[
            r#"{"candidates":[{"content":{"parts":[{"text":"It says hello."}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":4}}"#,
        ])])
        .await;
        let next = ChatRequest::new(
            "gemini-2.5-flash",
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
        assert_eq!(body["contents"][1]["role"], "model");
        assert_eq!(
            body["contents"][1]["parts"][0]["thoughtSignature"],
            "c2lnbmF0dXJl"
        );
        assert_eq!(
            body["contents"][2]["parts"][0]["functionResponse"],
            json!({"name": "files.read", "response": {"content": "hello"}})
        );
    })
    .await;
}

#[tokio::test]
async fn gemini_errors_are_named() {
    within(async {
        let f = Fixture::start(vec![Reply::error(
            400,
            r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#,
        )])
        .await;
        let r = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
        assert_eq!(
            collect(&provider(&f), &r).await.unwrap_err(),
            ModelError::WrongKey { status: 400 }
        );
        let f = Fixture::start(vec![Reply::error(
            404,
            r#"{"error":{"code":404,"message":"models/gemini-9 is not found for API version v1beta","status":"NOT_FOUND"}}"#,
        )])
        .await;
        let r = ChatRequest::new("gemini-9", vec![Message::user("hi")]);
        assert_eq!(
            collect(&provider(&f), &r).await.unwrap_err(),
            ModelError::UnknownModel {
                model: "gemini-9".into()
            }
        );
        // A name that would lead elsewhere on the server is no model's: nothing is sent.
        let asked = f.received().len();
        for model in [r"..\tunedModels\x", "..", "a/b", "%2e%2e", "gemini 2", ""] {
            let r = ChatRequest::new(model, vec![Message::user("hi")]);
            assert_eq!(
                collect(&provider(&f), &r).await.unwrap_err(),
                ModelError::UnknownModel {
                    model: model.into()
                },
                "{model}"
            );
        }
        assert_eq!(f.received().len(), asked);
        let f = Fixture::start(vec![Reply::error(
            400,
            r#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
        )])
        .await;
        let r = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
        assert!(matches!(
            collect(&provider(&f), &r).await.unwrap_err(),
            ModelError::ContextOverflow { .. }
        ));
    })
    .await;
}
