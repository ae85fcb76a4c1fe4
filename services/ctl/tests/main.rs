//! `rampartctl`'s integration tests as one test binary, one module per area;
//! `common` runs the built binary. Run one area with a filter on its module
//! path, e.g. `cargo test -p rampartctl --test main hierarchy::`.

mod binary;
mod common;
mod hierarchy;
mod operators;
mod reports;
mod tls;
