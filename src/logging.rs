//! Logging setup: `tracing` to stderr (never stdout, which may carry protocol frames).

use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber. `AURORA_LOG` (a tracing filter such as `aurora=debug`) overrides
/// `default_level`. Calling it twice is harmless.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_env("AURORA_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
