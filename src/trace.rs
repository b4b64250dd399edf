//! Diagnostic events through `tracing`, behind the optional `tracing` feature: compiled out
//! without it (the message's arguments are still type-checked, never evaluated).

/// Emits a `tracing` event at `$level` (`error`, `warn`, `info`, `debug`, `trace`) with a
/// format-string message; nothing without the `tracing` feature.
macro_rules! trace_event {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "tracing")]
        {
            ::tracing::$level!(target: "statelog", $($arg)+);
        }
        #[cfg(not(feature = "tracing"))]
        {
            if false {
                let _ = ::std::format_args!($($arg)+);
            }
        }
    }};
}

pub(crate) use trace_event;
