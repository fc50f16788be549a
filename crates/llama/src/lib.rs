//! The llama forward pass for one sequence on the CPU: what Sextant's embedded chat model runs.
//!
//! [`Llama`] loads a `llama`-architecture GGUF (SmolLM2, Llama, Mistral-style dense models) and
//! feeds tokens at a position, returning the logits after the last one. Weights stay in the file's
//! Q4_1 and Q8_0 blocks ([`kernels`](crate::kernels) multiplies them, with AVX2 on x86-64); the
//! key/value cache grows in place and remembers its tokens, so a prompt that starts like the previous
//! one only computes its new tokens.
//!
//! A crate of its own so that dev builds optimise it like the dependencies: the arithmetic is here.
//! Tokenizing, prompts and sampling are the `local` provider's, in `sextant-agent`.

mod kernels;
mod model;

pub use model::{Hyper, Llama};
