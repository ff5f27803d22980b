//! JSON for test assertions, on serde_json: reads the loadgen reports and the server's `/stats`,
//! with lookups by dotted path (`latency_us.p99`) that fail the test when a value is missing or
//! of the wrong kind.
#![allow(dead_code)]

use serde_json::Value;
use std::fmt;

/// A parsed JSON document.
#[derive(Clone, PartialEq, Default)]
pub struct Json(pub Value);

impl fmt::Debug for Json {
    /// Compact JSON text, so a failed assertion shows the document as it was sent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Json {
    /// Parses one whole JSON document (trailing input is an error).
    pub fn parse(text: &str) -> Result<Json, String> {
        serde_json::from_str(text)
            .map(Json)
            .map_err(|e| e.to_string())
    }

    /// The value at a dotted path of object keys (`latency_us.p99`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        at(&self.0, path)
    }

    /// The string at `path`, if there is one.
    pub fn str(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }

    /// A number at `path`; fails the test if it is missing.
    pub fn num(&self, path: &str) -> f64 {
        match self.get(path).and_then(Value::as_f64) {
            Some(n) => n,
            None => panic!(
                "{path}: expected a number, got {:?} in {self:?}",
                self.get(path)
            ),
        }
    }

    /// A non-negative whole number at `path`.
    pub fn count(&self, path: &str) -> u64 {
        count(&self.0, path)
    }

    /// Sum of a count field over the items of the array at `path`.
    pub fn sum(&self, path: &str, field: &str) -> u64 {
        match self.get(path).and_then(Value::as_array) {
            Some(items) => items.iter().map(|item| count(item, field)).sum(),
            None => panic!(
                "{path}: expected an array, got {:?} in {self:?}",
                self.get(path)
            ),
        }
    }
}

fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn count(value: &Value, path: &str) -> u64 {
    match at(value, path).and_then(Value::as_u64) {
        Some(n) => n,
        None => panic!(
            "{path}: expected a count, got {:?} in {value}",
            at(value, path)
        ),
    }
}
