//! Test support shared by this crate's integration tests.

pub mod qdrant_grpc_double;
