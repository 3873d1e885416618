//! Code memory: the code-aware tokenizer, ACT-R activation, and hybrid retrieval over the store.

pub mod activation;
pub mod retrieve;
pub mod tokenize;
