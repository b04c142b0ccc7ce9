//! `agentos-panel`: the AgentOS desktop app. `--address <bus>` picks a bus other than the
//! session bus (the one `agentctl --address` would use); other arguments go to GTK.

use agentos_panel::app::{App, Init};
use agentos_panel::APP_ID;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut address = None;
    let mut rest = Vec::new();
    let mut args = std::env::args();
    if let Some(argv0) = args.next() {
        rest.push(argv0);
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--address" => address = args.next(),
            _ => match arg.strip_prefix("--address=") {
                Some(a) => address = Some(a.to_string()),
                None => rest.push(arg),
            },
        }
    }
    let app = relm4::RelmApp::new(APP_ID).with_args(rest);
    app.run::<App>(Init { address });
}
