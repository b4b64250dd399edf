//! What the `statelog` command and its fuzz target share: the parser of `statelog apply`'s
//! JSON lines (`apply_line`).

pub mod apply_line;
