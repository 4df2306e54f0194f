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
