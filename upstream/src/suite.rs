//! What a test suite is, and what makes one malformed. Shared by the REST and WebSocket entry
//! points so both reject the same suites with the same message.

use serde::Deserialize;

/// Most steps a suite may have (keeps one execution's log small).
pub(crate) const MAX_STEPS: usize = 1000;
/// Longest pause between steps, in milliseconds.
pub(crate) const MAX_STEP_DELAY_MS: u64 = 60_000;
/// Pause between steps when the suite does not say.
const DEFAULT_STEP_DELAY_MS: u64 = 200;

/// A suite as posted: `{"name", "steps": [{"say", "expect"}], "step_delay_ms"}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Suite {
    /// Non-empty name, used in the log lines.
    pub(crate) name: String,
    /// One to [`MAX_STEPS`] steps, run in order.
    pub(crate) steps: Vec<Step>,
    /// Pause taken by each step, in milliseconds.
    #[serde(default = "default_step_delay")]
    pub(crate) step_delay_ms: u64,
}

/// One step: the utterance and what must be heard in it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Step {
    /// What is said.
    pub(crate) say: String,
    /// What the step expects to hear; see [`Step::passes`].
    pub(crate) expect: String,
}

fn default_step_delay() -> u64 {
    DEFAULT_STEP_DELAY_MS
}

impl Suite {
    /// Parses and validates a suite from JSON bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Result<Self, String> {
        let suite: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid suite: {e}"))?;
        suite.validate()
    }

    /// Parses and validates a suite from an already parsed JSON value.
    pub(crate) fn from_value(value: serde_json::Value) -> Result<Self, String> {
        let suite: Self =
            serde_json::from_value(value).map_err(|e| format!("invalid suite: {e}"))?;
        suite.validate()
    }

    fn validate(self) -> Result<Self, String> {
        if self.name.trim().is_empty() {
            return Err("invalid suite: `name` must not be empty".to_owned());
        }
        if self.steps.is_empty() {
            return Err("invalid suite: `steps` must not be empty".to_owned());
        }
        if self.steps.len() > MAX_STEPS {
            return Err(format!("invalid suite: at most {MAX_STEPS} steps"));
        }
        if self.step_delay_ms > MAX_STEP_DELAY_MS {
            return Err(format!(
                "invalid suite: `step_delay_ms` must be at most {MAX_STEP_DELAY_MS}"
            ));
        }
        Ok(self)
    }
}

impl Step {
    /// The pass rule: a step passes when `expect` (trimmed) occurs in `say`, ignoring case.
    /// An empty `expect` always passes. Deterministic, so tests can choose the outcome.
    pub(crate) fn passes(&self) -> bool {
        let expect = self.expect.trim().to_lowercase();
        self.say.to_lowercase().contains(&expect)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn accepts_a_minimal_suite_with_default_delay() {
        let suite =
            Suite::from_slice(br#"{"name":"s","steps":[{"say":"Hi","expect":"hi"}]}"#).unwrap();
        assert_eq!(suite.step_delay_ms, DEFAULT_STEP_DELAY_MS);
        assert!(suite.steps[0].passes());
    }

    #[test]
    fn rejects_malformed_suites() {
        for body in [
            &br#"{"steps":[{"say":"a","expect":"a"}]}"#[..],
            br#"{"name":" ","steps":[{"say":"a","expect":"a"}]}"#,
            br#"{"name":"s","steps":[]}"#,
            br#"{"name":"s","steps":[{"expect":"a"}]}"#,
            br#"{"name":"s","steps":[{"say":"a","expect":"a"}],"step_delay_ms":-1}"#,
            br#"{"name":"s","steps":[{"say":"a","expect":"a"}],"step_delay_ms":60001}"#,
            br#"[]"#,
            br#"not json"#,
        ] {
            assert!(
                Suite::from_slice(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn pass_rule_is_case_insensitive_containment() {
        let step = |say: &str, expect: &str| Step {
            say: say.into(),
            expect: expect.into(),
        };
        assert!(step("Book a TABLE for two", "table for").passes());
        assert!(step("anything", "").passes());
        assert!(!step("hello", "goodbye").passes());
    }
}
