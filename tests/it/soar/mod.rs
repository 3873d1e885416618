//! The SOAR pipeline end to end: the scripted client over fixture workspaces, golden envelopes, the
//! real OpenAI-compatible client against a fake server, and the classifier corpus.

mod assess_corpus;
mod config_keys;
mod golden;
mod harness;
mod pipeline;
mod wire;
