//! The loop's failures against a scripted model and kernel (`script.rs`): a child that fails or
//! is refused, malformed calls, calls that cannot be read, model errors in plain words, a model
//! without tools, an empty or cut answer.

use agentos_dbus_interfaces::inference::{error_kind, ChatEvent};
use serde_json::{json, Value};

use crate::host::{ChildReport, HostError};
use agentos_dbus_interfaces::inference::ChatMessage;

use crate::model::ModelFailure;
use crate::prompt::UNREADABLE_CALL;
use crate::run::run;
use crate::script::*;

#[tokio::test]
async fn a_failed_or_refused_child_is_a_failed_result_not_a_crash() {
    let model = Script::new(vec![
        calls(&[
            ("delegate_to_docs", json!({"goal": "find x"})),
            ("delegate_to_web", json!({"goal": "fetch y"})),
        ]),
        says(&["I could not find it."]),
    ]);
    let kernel = Kernel::new()
        .child(
            "docs",
            Ok(ChildReport {
                task: 9,
                state: "failed".into(),
                text: "no folder given".into(),
                artifacts: Vec::new(),
            }),
        )
        .child(
            "web",
            Err(HostError::new("the user denied delegating to web")),
        );
    let answer = run("x?", &model, &kernel, &settings()).await.unwrap();
    let got = results(&model.requests()[1]);
    assert!(got[0]
        .1
        .starts_with("<<failure from agent \"docs\" (task 9), untrusted"));
    assert!(got[0].1.contains("the task ended failed: no folder given"));
    assert!(got[1]
        .1
        .starts_with("<<failure from agent \"web\", untrusted"));
    assert!(got[1].1.contains("the user denied delegating to web"));
    assert_eq!(
        answer.text,
        "I could not get the information. What failed:\n\
         - agent \"docs\" (task 9): the task ended failed: no folder given.\n\
         - agent \"web\": the user denied delegating to web.\n\n\
         The model's answer comes from no source and may be wrong:\nI could not find it.",
        "failures are no sources"
    );
    assert!(answer.sources.is_empty());
    assert!(answer.children.is_empty());
}

#[tokio::test]
async fn every_delegation_denied_says_so_instead_of_passing_off_a_guess() {
    let model = Script::new(vec![
        calls(&[("delegate_to_docs", json!({"goal": "When is the dentist?"}))]),
        says(&["The dentist is on Tuesday at 10."]),
    ]);
    let kernel = Kernel::new().child(
        "docs",
        Err(HostError::new(
            "access was denied: the user refused docs reading your files",
        )),
    );
    let answer = run("When is the dentist?", &model, &kernel, &settings())
        .await
        .unwrap();
    assert!(
        answer.text.starts_with(
            "I could not get the information. What failed:\n- agent \"docs\": access was denied"
        ),
        "{}",
        answer.text
    );
    assert!(
        answer
            .text
            .ends_with("comes from no source and may be wrong:\nThe dentist is on Tuesday at 10."),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn malformed_calls_get_error_results_and_run_nothing() {
    let model = Script::new(vec![
        calls(&[
            (
                "delegate_to_docs",
                Value::String("{\"goal\": unquoted".into()),
            ),
            ("delegate_to_docs", json!({"question": "x"})),
            ("delegate_to_mars", json!({"goal": "x"})),
        ]),
        says(&["Sorry."]),
    ]);
    let kernel = Kernel::new();
    run("x", &model, &kernel, &settings()).await.unwrap();
    assert!(kernel.delegations().is_empty());
    let got = results(&model.requests()[1]);
    assert_eq!(got.len(), 3);
    assert!(
        got[0].1.contains("the arguments are not a JSON object"),
        "{}",
        got[0].1
    );
    assert!(got[1]
        .1
        .contains("\"goal\" (a non-empty string) is missing"));
    assert!(got[2]
        .1
        .contains("there is no tool named \"delegate_to_mars\""));
    assert!(got[2]
        .1
        .contains("delegate_to_docs, delegate_to_web, web_fetch"));
    assert!(got
        .iter()
        .all(|(_, c)| c.starts_with("<<failure from the sidekick")));
}

#[tokio::test]
async fn model_errors_fail_the_task_in_plain_words() {
    let model = Script::new(vec![Err(ModelFailure::new(
        error_kind::NO_MODEL,
        "no local model server answered; add one with agentctl models add",
    ))]);
    let err = run("x", &model, &Kernel::new(), &settings())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no model is available: no local model server answered; add one with agentctl models add"
    );
    let mid_stream = Script::new(vec![Ok(vec![
        started(),
        ChatEvent::Text { text: "The".into() },
        ChatEvent::Error {
            kind: error_kind::BUDGET.into(),
            message: "1000 tokens an hour".into(),
        },
    ])]);
    let err = run("x", &mid_stream, &Kernel::new(), &settings())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the sidekick is over its model budget: 1000 tokens an hour"
    );
    let cut = Script::new(vec![Ok(vec![
        started(),
        ChatEvent::Text { text: "x".into() },
    ])]);
    let err = run("x", &cut, &Kernel::new(), &settings())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("ended before it was complete"),
        "{err}"
    );
}

#[tokio::test]
async fn a_model_without_tools_answers_without_them() {
    let model = Script::new(vec![
        Err(ModelFailure::new(
            error_kind::TOOLS_NOT_SUPPORTED,
            "this model cannot call tools",
        )),
        says(&["Hello."]),
    ]);
    let answer = run("hi", &model, &Kernel::new(), &settings())
        .await
        .unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].tools.is_empty());
    assert_eq!(answer.text, "Hello.");
    let nothing = Kernel {
        agents: Vec::new(),
        tools: Vec::new(),
        ..Kernel::new()
    };
    let model = Script::new(vec![says(&["Hi."])]);
    let answer = run("hi", &model, &nothing, &settings()).await.unwrap();
    assert_eq!(answer.text, "Hi.");
    assert!(model.requests()[0].tools.is_empty(), "nothing to offer");
}

#[tokio::test]
async fn an_empty_final_answer_falls_back_to_what_the_sources_said() {
    let model = Script::new(vec![
        calls(&[("delegate_to_docs", json!({"goal": "x"}))]),
        calls(&[("delegate_to_docs", json!({"goal": "x"}))]),
        says(&[]),
    ]);
    let kernel = Kernel::new().child("docs", completed(4, "budget.txt: 5 EUR"));
    let answer = run("x", &model, &kernel, &settings()).await.unwrap();
    assert!(
        answer
            .text
            .starts_with("The model gave no answer. What the sources returned:\n\nagent \"docs\" (task 4):\nbudget.txt: 5 EUR"),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn an_answer_cut_at_the_length_limit_says_so() {
    let nothing = Kernel {
        agents: Vec::new(),
        tools: Vec::new(),
        ..Kernel::new()
    };
    let model = Script::new(vec![Ok(vec![
        started(),
        ChatEvent::Text {
            text: "The budget is".into(),
        },
        done("length"),
    ])]);
    let answer = run("x", &model, &nothing, &settings()).await.unwrap();
    assert_eq!(
        answer.text,
        "The budget is\n\n(The answer stops here: the model reached its length limit.)"
    );
}

#[tokio::test]
async fn a_model_going_round_in_circles_is_cut_said_once_and_the_cut_told() {
    let nothing = Kernel {
        agents: Vec::new(),
        tools: Vec::new(),
        ..Kernel::new()
    };
    let sentence = "The budget is 100 EUR according to nothing at all. ";
    let pieces: Vec<&str> = std::iter::repeat_n(sentence, 200).collect();
    let model = Script::new(vec![says(&pieces)]);
    let answer = run("x", &model, &nothing, &settings()).await.unwrap();
    assert_eq!(
        answer.text,
        format!(
            "{}\n\n(The answer stops here: the model began repeating itself.)",
            sentence.trim()
        )
    );
}

#[tokio::test]
async fn a_model_failing_after_results_still_gives_them_and_the_childrens_files() {
    let limited = || {
        Err(ModelFailure::new(
            error_kind::RATE_LIMITED,
            "try again in 20 s",
        ))
    };
    // In the loop, after a step whose child completed with a file.
    let model = Script::new(vec![
        calls(&[("delegate_to_docs", json!({"goal": "find the budget"}))]),
        limited(),
    ]);
    let kernel = Kernel::new().child("docs", completed(4, "budget.txt: 5 EUR"));
    let answer = run("x", &model, &kernel, &settings()).await.unwrap();
    assert!(
        answer.text.starts_with(
            "The model failed before it could answer (the model's provider is limiting the \
             rate of requests: try again in 20 s). What the sources returned:"
        ),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("budget.txt: 5 EUR"), "{}", answer.text);
    assert_eq!(answer.children, [4], "the child's files are adopted");
    assert_eq!(answer.steps, 1);
    // In the final turn, once the steps are used up.
    let model = Script::new(vec![
        calls(&[("delegate_to_docs", json!({"goal": "find the budget"}))]),
        limited(),
    ]);
    let kernel = Kernel::new().child("docs", completed(4, "budget.txt: 5 EUR"));
    let one_step = crate::run::Settings {
        max_steps: 1,
        ..settings()
    };
    let answer = run("x", &model, &kernel, &one_step).await.unwrap();
    assert!(
        answer.text.starts_with("The model failed"),
        "{}",
        answer.text
    );
    assert_eq!(answer.children, [4]);
    // With nothing found, the task fails with the model's words.
    let model = Script::new(vec![
        calls(&[("delegate_to_mars", json!({"goal": "x"}))]),
        limited(),
    ]);
    let err = run("x", &model, &Kernel::new(), &settings())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("try again in 20 s"), "{err}");
}

#[tokio::test]
async fn a_goal_copied_from_the_prompt_is_replaced_by_the_users_question() {
    for copied in [
        crate::prompt::EXAMPLE_QUESTION.to_string(),
        // The agent's description, or a part of it.
        "Finds and reads your documents".to_string(),
    ] {
        let model = Script::new(vec![
            calls(&[("delegate_to_docs", json!({ "goal": copied }))]),
            says(&["Tuesday."]),
        ]);
        let kernel = Kernel::new();
        run("When does the bus leave?", &model, &kernel, &settings())
            .await
            .unwrap();
        assert_eq!(
            kernel.delegations(),
            [("docs".to_string(), "When does the bus leave?".to_string())],
            "{copied}"
        );
    }
    // A goal of the model's own words is passed on as written.
    let model = Script::new(vec![
        calls(&[("delegate_to_docs", json!({"goal": "bus timetable"}))]),
        says(&["Tuesday."]),
    ]);
    let kernel = Kernel::new();
    run("When does the bus leave?", &model, &kernel, &settings())
        .await
        .unwrap();
    assert_eq!(kernel.delegations()[0].1, "bus timetable");
}

#[tokio::test]
async fn what_was_found_in_a_step_dropped_to_fit_the_window_still_counts() {
    // A small window: the first step's large answer is dropped once later steps (each a large
    // failure) come in.
    let big_failure = "x".repeat(3000);
    let script = |last| {
        let mut s = vec![calls(&[(
            "delegate_to_docs",
            json!({"goal": "find the budget"}),
        )])];
        for n in 0..6 {
            s.push(calls(&[(
                "delegate_to_web",
                json!({ "goal": format!("page {n}") }),
            )]));
        }
        s.push(last);
        s
    };
    let kernel = || {
        let mut k = Kernel::new()
            .child(
                "docs",
                completed(4, &format!("budget.txt: 5 EUR {}", "y".repeat(3000))),
            )
            .child("web", Err(HostError::new(big_failure.clone())));
        k.models = vec![agentos_dbus_interfaces::ModelInfo {
            provider: "llama-server".into(),
            model: "qwen".into(),
            local: true,
            reachable: true,
            context: 1024,
            slots: 1,
        }];
        k
    };
    let seven_steps = crate::run::Settings {
        max_steps: 7,
        ..settings()
    };
    // The answer is not passed off as a guess from nothing.
    let model = Script::new(script(says(&["The budget is 5 EUR."])));
    let answer = run("x", &model, &kernel(), &seven_steps).await.unwrap();
    let last = model.requests().pop().unwrap();
    assert!(
        !serde_json::to_string(&last.messages)
            .unwrap()
            .contains("budget.txt: 5 EUR"),
        "the first step was dropped"
    );
    assert!(
        answer.text.starts_with("The budget is 5 EUR."),
        "{}",
        answer.text
    );
    // A model failing at the end does not take the child's files down with it.
    let limited = Err(ModelFailure::new(
        error_kind::RATE_LIMITED,
        "try again in 20 s",
    ));
    let model = Script::new(script(limited));
    let answer = run("x", &model, &kernel(), &seven_steps).await.unwrap();
    assert!(
        answer.text.starts_with("The model failed"),
        "{}",
        answer.text
    );
    assert_eq!(answer.children, [4]);
}

/// What the task fails with when the model's answer is a call it did not finish writing.
const UNFINISHED: &str =
    "the model's answer was a tool call it did not finish writing; try again, or use a larger model";

#[tokio::test]
async fn a_call_that_cannot_be_read_is_no_answer_and_the_model_is_asked_once_more() {
    let unreadable = r#"{"name": "delegate_to_docs", "arguments": {"goal": "When"#;
    let model = Script::new(vec![
        says(&[unreadable]),
        calls(&[("delegate_to_docs", json!({"goal": "When is the dentist?"}))]),
        says(&["On Tuesday (dentist.txt)."]),
    ]);
    let kernel = Kernel::new().child("docs", completed(3, "dentist.txt: Tuesday"));
    let answer = run("When is the dentist?", &model, &kernel, &settings())
        .await
        .unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    let again = &requests[1];
    assert!(!again.tools.is_empty(), "asked again with the tools");
    assert_eq!(
        again.messages[again.messages.len() - 2..],
        [
            ChatMessage::assistant(unreadable, Vec::new()),
            ChatMessage::user(UNREADABLE_CALL)
        ]
    );
    assert!(
        !format!("{:?}", requests[2].messages).contains(UNREADABLE_CALL),
        "gone once a call is made"
    );
    assert_eq!(kernel.delegations().len(), 1);
    assert!(
        answer.text.starts_with("On Tuesday (dentist.txt)."),
        "{}",
        answer.text
    );
    // Asked again, it answers in words.
    let model = Script::new(vec![
        says(&["delegate_to_docs with {\"goal\": \"When is the dentist?\"} and I will say"]),
        says(&["I cannot look it up."]),
    ]);
    let answer = run("When is the dentist?", &model, &Kernel::new(), &settings())
        .await
        .unwrap();
    assert_eq!(answer.text, "I cannot look it up.");
}

#[tokio::test]
async fn a_second_call_that_cannot_be_read_fails_the_task_saying_why() {
    let unreadable = r#"{"name": "delegate_to_docs", "arguments": {"goal": "When"#;
    let model = Script::new(vec![says(&[unreadable]), says(&[unreadable])]);
    let kernel = Kernel::new();
    let err = run("When is the dentist?", &model, &kernel, &settings())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), UNFINISHED);
    assert_eq!(model.requests().len(), 2, "asked once more, not more");
    assert!(kernel.delegations().is_empty());
    // With something found before, that is given, with why the model gave no answer.
    let model = Script::new(vec![
        calls(&[("delegate_to_docs", json!({"goal": "When is the dentist?"}))]),
        says(&[unreadable]),
        says(&["delegate_to_docs: {\"goal\": "]),
    ]);
    let kernel = Kernel::new().child("docs", completed(3, "dentist.txt: Tuesday"));
    let answer = run("When is the dentist?", &model, &kernel, &settings())
        .await
        .unwrap();
    assert!(
        answer.text.starts_with(&format!(
            "The model failed before it could answer ({UNFINISHED}). What the sources returned:"
        )),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("dentist.txt: Tuesday"));
    assert_eq!(answer.children, [3]);
}

#[tokio::test]
async fn a_call_that_cannot_be_read_in_the_final_turn_is_no_answer() {
    let unreadable = r#"{"name": "delegate_to_docs", "arguments": {"goal": "x"},"#;
    // A model that cannot call tools answers without them, in the final turn.
    let model = Script::new(vec![
        Err(ModelFailure::new(
            error_kind::TOOLS_NOT_SUPPORTED,
            "this model cannot call tools",
        )),
        says(&[unreadable]),
    ]);
    let err = run("x", &model, &Kernel::new(), &settings())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), UNFINISHED);
    // Once the steps are used up, what was found is given.
    let model = Script::new(vec![
        calls(&[("delegate_to_docs", json!({"goal": "x"}))]),
        says(&["delegate_to_docs with {\"goal\": \"x\"}"]),
    ]);
    let kernel = Kernel::new().child("docs", completed(3, "budget.txt: 5 EUR"));
    let one_step = crate::run::Settings {
        max_steps: 1,
        ..settings()
    };
    let answer = run("x", &model, &kernel, &one_step).await.unwrap();
    assert!(
        answer
            .text
            .starts_with("The model gave no answer. What the sources returned:"),
        "a call written whole by name is left out of the answer: {}",
        answer.text
    );
    let model = Script::new(vec![
        calls(&[("delegate_to_docs", json!({"goal": "x"}))]),
        says(&[unreadable]),
    ]);
    let answer = run("x", &model, &kernel, &one_step).await.unwrap();
    assert!(
        answer.text.starts_with(&format!(
            "The model failed before it could answer ({UNFINISHED})"
        )),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn each_call_that_cannot_be_read_gets_its_one_more_try() {
    // Broken, then made; broken again later, then made: two tries, neither the last.
    let unreadable = r#"{"name": "delegate_to_docs", "arguments": {"goal": "When"#;
    let model = Script::new(vec![
        says(&[unreadable]),
        calls(&[("delegate_to_docs", json!({"goal": "When is the dentist?"}))]),
        says(&[unreadable]),
        calls(&[("delegate_to_docs", json!({"goal": "Where is the dentist?"}))]),
        says(&["On Tuesday, on Main Street (dentist.txt)."]),
    ]);
    let kernel = Kernel::new()
        .child("docs", completed(3, "dentist.txt: Tuesday"))
        .child("docs", completed(4, "dentist.txt: Main Street"));
    let answer = run(
        "When and where is the dentist?",
        &model,
        &kernel,
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!(kernel.delegations().len(), 2);
    assert!(
        answer.text.starts_with("On Tuesday, on Main Street"),
        "{}",
        answer.text
    );
}
