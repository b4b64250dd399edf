//! The frame layer.
