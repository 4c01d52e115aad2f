//! Runs a suite in the background, step by step, writing log lines to the execution store as
//! it goes.
//!
//! Each step logs `step i/n: say "<say>"`, waits `step_delay_ms`, then logs
//! `step i/n: passed (heard "<expect>")` or `step i/n: failed (expected "<expect>")` by the rule
//! of [`crate::suite::Step::passes`]. All steps run; the suite passes when every step passed.

use std::sync::Arc;
use std::time::Duration;

use crate::executions::{ExecutionStore, Status, StoreFull};
use crate::suite::Suite;

/// Registers a new execution of `suite` and starts it; returns its id at once.
pub(crate) fn start(store: &Arc<ExecutionStore>, suite: Suite) -> Result<String, StoreFull> {
    // One opening line, two per step, one summary line, then the final status.
    let events = 2 * suite.steps.len() + 3;
    let id = store.create(events)?;
    tokio::spawn(run(Arc::clone(store), id.clone(), suite));
    Ok(id)
}

async fn run(store: Arc<ExecutionStore>, id: String, suite: Suite) {
    let total = suite.steps.len();
    let delay = Duration::from_millis(suite.step_delay_ms);
    store.log(
        &id,
        format!("suite {:?} started: {total} steps", suite.name),
    );
    let mut passed = 0;
    for (index, step) in suite.steps.iter().enumerate() {
        let n = index + 1;
        store.log(&id, format!("step {n}/{total}: say {:?}", step.say));
        tokio::time::sleep(delay).await;
        let line = if step.passes() {
            passed += 1;
            format!("step {n}/{total}: passed (heard {:?})", step.expect)
        } else {
            format!("step {n}/{total}: failed (expected {:?})", step.expect)
        };
        store.log(&id, line);
    }
    let (status, word) = if passed == total {
        (Status::Passed, "passed")
    } else {
        (Status::Failed, "failed")
    };
    store.log(
        &id,
        format!(
            "suite {:?} {word}: {passed}/{total} steps passed",
            suite.name
        ),
    );
    store.finish(&id, status);
}
