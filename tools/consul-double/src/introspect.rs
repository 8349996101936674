//! The double's own control surface over HTTP, under `/_double/`, for the demo and for tests
//! that drive the double from outside the process. Never faulted, never journaled, no ACL.
//!
//! | Method        | Path                 | Does                                             |
//! |---------------|----------------------|--------------------------------------------------|
//! | GET           | `/_double/state`     | services, checks and index (JSON)                |
//! | GET / DELETE  | `/_double/requests`  | the request log / forget it                      |
//! | GET           | `/_double/faults`    | the active fault rules                           |
//! | PUT / POST    | `/_double/faults`    | add a rule, body e.g. `{"fault":{"kind":"reset"}}` |
//! | DELETE        | `/_double/faults`    | clear all rules, release hung requests           |
//! | PUT / POST    | `/_double/restart`   | agent restart; `?reset_index=true` resets index  |
//!
//! Owns only the translation from these routes to `Control` operations.

use hyper::Method;

use crate::control::{Control, Restart};
use crate::faults::FaultRule;
use crate::reply::Reply;

pub(crate) const PREFIX: &str = "/_double/";

pub(crate) fn handle(
    control: &Control,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Reply {
    let route = path.strip_prefix(PREFIX).unwrap_or_default();
    match (method.as_str(), route) {
        ("GET", "state") => Reply::json(&control.state()),
        ("GET", "requests") => Reply::json(&control.requests()),
        ("DELETE", "requests") => {
            control.clear_requests();
            Reply::empty()
        }
        ("GET", "faults") => Reply::json(&control.faults()),
        ("PUT" | "POST", "faults") => match serde_json::from_slice::<FaultRule>(body) {
            Ok(rule) => {
                control.set_fault(rule);
                Reply::empty()
            }
            Err(error) => Reply::text(400, format!("invalid fault rule: {error}")),
        },
        ("DELETE", "faults") => {
            control.clear_faults();
            Reply::empty()
        }
        ("PUT" | "POST", "restart") => {
            let reset = form_urlencoded::parse(query.as_bytes())
                .any(|(key, value)| key == "reset_index" && (value == "true" || value == "1"));
            control.restart_agent(if reset {
                Restart::ResetIndex
            } else {
                Restart::KeepIndex
            });
            Reply::empty()
        }
        _ => Reply::text(404, "unknown /_double/ route"),
    }
}
