//! Vector memory for Sextant agents: embedders, vector stores, ingestion and retrieval.
//!
//! The embedders, stores and retriever land with the memory issue; the crate exists now so the
//! dependency direction of the workspace (`agent → memory`) is fixed from the start.
#![deny(missing_docs)]
