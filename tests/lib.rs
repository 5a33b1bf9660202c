//! Nothing here: the end-to-end tests are the `e2e` test target in `main.rs`.
