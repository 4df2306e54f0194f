//! One process-wide rustls crypto provider (ring), installed before the
//! first HTTP client is built. ring builds much faster than aws-lc-rs.

use std::sync::Once;

/// Installs ring as rustls' default provider unless one is installed
/// already (by us or by the application).
pub(crate) fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: any provider works.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// The error and its causes as one line, for messages.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
