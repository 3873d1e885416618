//! The only place that prints: stdout for results, stderr for warnings and errors.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

/// One line of results on stdout. A closed pipe (`| head`) ends the output quietly.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").is_err() {
        std::process::exit(0);
    }
}

/// A value as one line of JSON on stdout.
pub fn json<T: serde::Serialize>(value: &T) {
    line(&serde_json::to_string(value).expect("output values serialise"));
}

pub fn warn(text: &str) {
    eprintln!("aurora: warning: {text}");
}

pub fn error(text: &str) {
    eprintln!("aurora: error: {text}");
}
